"""The hostile repository corpus (engine/sim/hostile.py) scanned through the simulator.

Each case is one repository an attacker controls, scanned together with an ordinary
one: the hostile file is one isolated file error with its reason (in the JSON output,
the table and the coverage), the ordinary repository's finding is still reported, the
run completes, and the verdict says a file was not checked — never "nothing found".
HUGE is the exception that proves the point: above ``stream_threshold_bytes`` the
lockfile is read in parts and its findings come out like any other file's.
"""

from __future__ import annotations

import json

import httpx
import pytest

from engine.api import Engine
from engine.config import load_config
from engine.jobs.ioc_scan.output import render
from engine.jobs.ioc_scan.parsers import parser_for, streaming
from engine.jobs.ioc_scan.scan import DEFAULT_IOCS, ScanTargets, build_spec, make_client, results
from engine.models import RunState
from engine.sim import SimConfig, create_app, hostile

URL = "http://sim.test"
CLEAN = ("acme/clean", "package-lock.json", "02-echo", "0.0.7")


async def scan_cases(tmp_path, *repos: str, **overrides):
    paths = hostile.write_corpus(tmp_path / "repos", huge_packages=8000)
    app = create_app(SimConfig(repos_dir=str(tmp_path / "repos")))
    config = load_config(None, env={}, overrides={"retry_attempts": 0, **overrides})
    async with await Engine.open(tmp_path / "scan.db", config) as engine:
        spec = build_spec(ScanTargets(repos=[f"acme/{r}" for r in (*repos, "clean")]), [DEFAULT_IOCS], api_url=URL)
        client = make_client(engine, URL, "sim-token", transport=httpx.ASGITransport(app))
        run_id = await engine.create_run("ioc-scan", spec)
        state = await (await engine.start(run_id, github=client)).wait()
        await client.aclose()
        scanned = await results(engine.store, run_id)
    assert state is RunState.COMPLETED
    found = {(m.repo, m.file_path, m.package_name, m.version) for m in scanned.matches}
    assert CLEAN in found                                  # the scan went on past the hostile file
    return scanned, found, paths


def outputs(scanned) -> tuple[dict, str]:
    as_json = json.loads(render(scanned.matches, "json", scanned.failures, coverage=scanned.coverage))
    table = render(scanned.matches, "table", scanned.failures, coverage=scanned.coverage)
    return as_json, table


async def assert_isolated_file_error(tmp_path, repo: str, reason: str, **overrides) -> None:
    scanned, _, paths = await scan_cases(tmp_path, repo, **overrides)
    path = paths[repo].split("/", 1)[1] if repo in paths else "bun.lock"
    assert [(f["repo"], f["file_path"]) for f in scanned.failures] == [(f"acme/{repo}", path)]
    assert reason in scanned.failures[0]["reason"]
    as_json, table = outputs(scanned)
    assert as_json["parse_errors"][0]["reason"] == scanned.failures[0]["reason"]
    assert as_json["coverage"]["files_not_parsable"] == 1
    verdict = as_json["verdict"]
    assert "1 file(s) could not be parsed and were not checked" in verdict
    assert "No compromised packages found" not in verdict and "No compromised packages found" not in table
    assert reason in table and "Traceback" not in table


async def test_deep_json_is_one_file_error_not_a_recursion_traceback(tmp_path):
    await assert_isolated_file_error(tmp_path, "deep-json", "nested too deeply")


async def test_deep_yaml_is_one_file_error(tmp_path):
    await assert_isolated_file_error(tmp_path, "deep-yaml", "nesting depth")


async def test_a_binary_lockfile_is_one_file_error(tmp_path):
    await assert_isolated_file_error(tmp_path, "binary", "not UTF-8 text")


async def test_billion_laughs_aliases_are_refused_not_expanded(tmp_path):
    await assert_isolated_file_error(tmp_path, "laughs", "aliases are not used by pnpm lockfiles (refused")


async def test_a_huge_lockfile_above_the_threshold_is_read_in_parts_with_its_findings(tmp_path):
    data = hostile.big_package_lock(8000)
    assert len(data) > 10 * 10240
    whole = [d.line for d in parser_for("package-lock.json").parse("package-lock.json", data) if d.name == "02-echo"]
    scanned, found, _ = await scan_cases(tmp_path, "huge", stream_large_files_threshold=10240)
    assert not scanned.failures
    assert ("acme/huge", "package-lock.json", "02-echo", "0.0.7") in found
    lines = sorted(m.line_number for m in scanned.matches if m.repo == "acme/huge")
    assert lines == [min(whole)] and lines[0] > 10_000     # its line, as the whole-file parse numbers it
    assert scanned.coverage.complete


async def test_a_huge_lockfile_no_reader_can_stream_is_refused_within_the_memory_budget(tmp_path, monkeypatch):
    # the budget of the smallest max_memory_usage_mb, shrunk so a 100 kB file exceeds it
    monkeypatch.setattr(streaming, "WHOLE_PARSE_EXPANSION", 1000)
    big = tmp_path / "repos" / "huge-bun" / "bun.lock"
    big.parent.mkdir(parents=True)
    big.write_text('{"lockfileVersion": 1, "workspaces": {}, "packages": {}}' + " " * 200_000)
    await assert_isolated_file_error(tmp_path, "huge-bun", "too large to parse", max_memory_usage_mb=100,
                                     stream_large_files_threshold=10240)


@pytest.mark.parametrize("repo", ["escapes", "markup"])
async def test_escapes_and_markup_in_paths_are_findings_shown_as_plain_visible_text(tmp_path, repo):
    scanned, found, paths = await scan_cases(tmp_path, repo)
    path = paths[repo].split("/", 1)[1]
    assert (f"acme/{repo}", path, "02-echo", "0.0.7") in found       # exact data in the store and JSON
    as_json, table = outputs(scanned)
    assert path in {m["file_path"] for m in as_json["matches"]}
    assert "\x1b" not in table and "\x07" not in table
    if repo == "escapes":
        assert "evil\u241b]0;pwned\u2407dir\u241b[2J" in table
    else:
        assert "[/oops]crash/[link=x]y/package-lock.json" in table
