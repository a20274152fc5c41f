"""The incident workflow through the CLI, in process over the simulator (httpx.ASGITransport):
interrupt a scan with Ctrl-C, resume it with a token, replay what failed, export the findings.

A scan that must be mid-flight is held by a gate on the simulator's tree requests: it opens
only once the runner has taken the stop, so nothing here depends on timing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import stat
import sys
from pathlib import Path

import httpx
import pytest

import engine.github.service as service_module
from console import cli
from engine.errors import InputError
from engine.jobs.ioc_scan.scan import DEFAULT_IOCS
from engine.runner import Runner
from engine.sim import SimConfig, create_app

URL = "http://sim.test"
FAST = "batch:\n  performance: {retry_attempts: 0, retry_delay_base: 0.1}\n"


class Gate:
    """ASGI middleware: holds every tree request until ``release`` is set."""

    def __init__(self, app) -> None:
        self.app = app
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    def close(self) -> None:
        self.release.clear()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and "/git/trees/" in scope["path"] and not self.release.is_set():
            self.reached.set()
            await self.release.wait()
        await self.app(scope, receive, send)


def serve(monkeypatch, config: SimConfig) -> Gate:
    """Make every GitHub client the CLI builds talk to this simulator, in process."""
    app = Gate(create_app(config))
    real = service_module.make_client

    def make_client(req, api_url, token, **kw):
        connection = dataclasses.replace(req.connection,
                                         extra={**req.connection.extra, "transport": httpx.ASGITransport(app)})
        return real(dataclasses.replace(req, connection=connection), api_url, token, **kw)

    monkeypatch.setattr(service_module, "make_client", make_client)
    return app


@pytest.fixture
def sim(monkeypatch):
    return serve(monkeypatch, SimConfig(repos=8, seed=2))


async def run_cli(*argv: str) -> int:
    """What ``main`` does, on the test's event loop."""
    args = cli.build_parser().parse_args(list(argv))
    try:
        return await args.func(args)
    except InputError as exc:
        print(f"batchdeck: error: {exc}", file=sys.stderr)
        return cli.EXIT_INPUT


async def sim_json(app, path: str, method: str = "GET", body=None):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=URL) as client:
        response = await client.request(method, path, json=body)
        return response.json()


def truth_set(truth) -> set:
    return {(t["repo"], t["path"], t["package"], t["version"], t["kind"]) for t in truth["findings"]}


def found_set(document) -> set:
    return {(m["repo"], m["file_path"], m["package_name"], m["version"], m["kind"]) for m in document["matches"]}


def scan_args(db: Path, *extra: str) -> list[str]:
    return ["scan", "--headless", "--org", "acme", "--include-archived", "--include-forks", "--api-url", URL,
            "--iocs", str(DEFAULT_IOCS), "--db", str(db), "--token", "sim-token", *extra]


async def test_ctrl_c_mid_scan_says_incomplete_then_resume_with_a_token_completes(sim, tmp_path, monkeypatch):
    db, first, second = tmp_path / "i.db", tmp_path / "first.json", tmp_path / "second.json"
    real_stop = Runner.stop

    async def stop_then_release(self, reason="stopped"):
        await real_stop(self, reason)
        sim.release.set()                 # the stop is taken: let the held requests finish

    monkeypatch.setattr(Runner, "stop", stop_then_release)
    sim.close()
    task = asyncio.create_task(run_cli(*scan_args(db, "--format", "json", "-o", str(first))))
    await sim.reached.wait()
    os.kill(os.getpid(), signal.SIGINT)   # what Ctrl-C sends; the CLI's handler takes it
    assert await task == cli.EXIT_INTERRUPTED
    document = json.loads(first.read_text())
    assert document["complete"] is False and document["coverage"]["state"] == "paused"
    assert "No compromised packages found" not in first.read_text()
    assert document["coverage"]["repos_not_scanned"]       # the repos it did not reach, by name
    run_id = document["run"]["run_id"]
    assert stat.S_IMODE(first.stat().st_mode) == 0o600

    # resume takes the connection flags of the scan (before: "unrecognized arguments: --token")
    code = await run_cli("resume", str(run_id), "--headless", "--db", str(db), "--api-url", URL,
                         "--token", "sim-token", "--format", "json", "-o", str(second))
    assert code == cli.EXIT_FAILED                            # findings: exit 1 like the scan (was 0)
    resumed = json.loads(second.read_text())
    assert resumed["complete"] is True and resumed["coverage"]["repos_not_scanned"] == []
    assert found_set(resumed) == truth_set(await sim_json(sim, "/_sim/truth"))

    # and `findings` exports the stored run again, in any format
    code = await run_cli("findings", str(run_id), "--db", str(db), "--format", "csv", "-o", str(tmp_path / "f.csv"))
    assert code == cli.EXIT_FAILED
    rows = (tmp_path / "f.csv").read_text().splitlines()
    assert rows[0].endswith(",run_id") and len(rows) - 1 == len(resumed["matches"])
    sidecar = json.loads((tmp_path / "f.csv.coverage.json").read_text())
    assert sidecar["complete"] is True and sidecar["coverage"]["run_id"] == run_id


async def test_resume_without_the_token_the_run_was_made_with_refuses_and_changes_nothing(sim, tmp_path,
                                                                                         monkeypatch, capsys):
    db = tmp_path / "t.db"
    assert await run_cli(*scan_args(db, "--token", "bad-token")) == cli.EXIT_INPUT
    for name in ("GITHUB_TOKEN", "GH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("engine.github.auth._token_from_gh_cli", lambda: None)
    capsys.readouterr()
    code = await run_cli("resume", "1", "--headless", "--db", str(db), "--api-url", URL)
    assert code == cli.EXIT_INPUT
    assert "was started with credentials" in capsys.readouterr().err
    assert await run_cli("runs", "--db", str(db), "--format", "json") == 0
    assert json.loads(capsys.readouterr().out)[0]["state"] == "failed"      # not re-marked by a failed resume
    assert await run_cli("resume", "1", "--headless", "--db", str(db), "--api-url", URL,
                         "--token", "sim-token") == cli.EXIT_FAILED


async def test_replay_prints_the_family_findings_and_exits_like_scan(sim, tmp_path, capsys):
    db, config = tmp_path / "r.db", tmp_path / "fast.yaml"
    config.write_text(FAST)
    truth = await sim_json(sim, "/_sim/truth")
    planted = sorted({t["repo"] for t in truth["findings"]})[:2]
    await sim_json(sim, "/_sim/faults", "POST", {"error_rate": 1.0})     # every request a 5xx
    args = ["scan", "--headless", "--api-url", URL, "--iocs", str(DEFAULT_IOCS), "--db", str(db),
            "--config", str(config), "--token", "sim-token", "--format", "json"]
    for repo in planted:
        args += ["--repo", repo]
    assert await run_cli(*args) == cli.EXIT_FAILED
    first = json.loads(capsys.readouterr().out)
    assert first["complete"] is False and first["matches"] == []
    assert {g["repo"] for g in first["coverage"]["repos_not_scanned"]} == set(planted)

    await sim_json(sim, "/_sim/faults", "POST", {"error_rate": 0.0})
    code = await run_cli("replay", "1", "--headless", "--db", str(db), "--api-url", URL, "--token", "sim-token",
                         "--format", "json")
    assert code == cli.EXIT_FAILED                     # findings now: 1, like scan (was 0, and printed nothing)
    replayed = json.loads(capsys.readouterr().out)
    assert replayed["complete"] is True and replayed["coverage"]["runs"] == [1, 2]
    assert found_set(replayed) == {f for f in truth_set(truth) if f[0] in planted}
    assert {m["run_id"] for m in replayed["matches"]} == {2}         # the replay found them


async def test_sarif_dir_writes_one_private_file_per_scanned_repository(sim, tmp_path, capsys):
    db, out = tmp_path / "s.db", tmp_path / "sarif"
    assert await run_cli(*scan_args(db, "--sarif-dir", str(out), "--format", "json")) == cli.EXIT_FAILED
    document = json.loads(capsys.readouterr().out)
    files = sorted(out.rglob("*.sarif"))
    assert len(files) == document["coverage"]["repos_scanned"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        repo = f"{path.parent.name}/{path.stem}"
        run = json.loads(path.read_text())["runs"][0]
        assert run["automationDetails"]["id"] == f"batchdeck/ioc-scan/{document['run']['run_id']}"
        for result in run["results"]:
            assert result["properties"]["repository"] == repo
            uri = result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            assert not uri.startswith("acme/") and not result["message"]["text"].startswith(repo)
    with_findings = {f"{p.parent.name}/{p.stem}" for p in files if json.loads(p.read_text())["runs"][0]["results"]}
    assert with_findings == {m["repo"] for m in document["matches"]}


async def test_an_output_that_cannot_be_written_after_the_scan_loses_nothing(sim, tmp_path, monkeypatch, capsys):
    db, gone = tmp_path / "o.db", tmp_path / "gone"
    gone.mkdir()
    real_run = Runner.run

    async def remove_output_dir_during_the_run(self):
        gone.rmdir()                       # the directory was there when the scan started
        return await real_run(self)

    monkeypatch.setattr(Runner, "run", remove_output_dir_during_the_run)
    code = await run_cli(*scan_args(db, "--format", "json", "-o", str(gone / "f.json")))
    assert code == cli.EXIT_INPUT
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "cannot write" in error and "batchdeck findings 1" in error
    monkeypatch.undo()
    assert await run_cli("findings", "1", "--db", str(db), "--format", "json") == cli.EXIT_FAILED
    assert found_set(json.loads(capsys.readouterr().out)) == truth_set(await sim_json(sim, "/_sim/truth"))


HOSTILE_DIR = "evil\x1b]0;pwned\x07dir\x1b[2J"


async def test_escape_sequences_from_a_repository_never_reach_the_terminal(tmp_path, monkeypatch, capsys):
    repo = tmp_path / "repos" / "hostile" / HOSTILE_DIR
    repo.mkdir(parents=True)
    (repo / "package-lock.json").write_text(json.dumps({"lockfileVersion": 3, "packages": {
        "": {"name": "x"}, "node_modules/02-echo": {"version": "0.0.7"}}}, indent=2))
    serve(monkeypatch, SimConfig(repos_dir=str(tmp_path / "repos")))
    base = ["scan", "--headless", "--api-url", URL, "--iocs", str(DEFAULT_IOCS), "--db", str(tmp_path / "h.db"),
            "--token", "sim-token", "--repo", "acme/hostile", "--repo", "acme/gone\x1b]0;pwned\x07"]
    for fmt in ("table", "csv"):
        assert await run_cli(*base, "--format", fmt) == cli.EXIT_FAILED
        out, err = capsys.readouterr()
        for stream in (out, err):
            assert "\x1b" not in stream and "\x07" not in stream
        row = next(line for line in out.splitlines() if "02-echo" in line)        # the finding still shows
        assert "evil\u241b]0;pwned\u2407dir\u241b[2J/package-lock.json" in row and "0.0.7" in row
        assert "acme/gone\u241b]0;pwned\u2407" in (out if fmt == "table" else err)  # named, made visible


async def test_quitting_the_console_mid_scan_says_incomplete(sim, tmp_path, monkeypatch, capsys):
    """The console is replaced by a user who quits as soon as the scan is under way."""
    import console.app

    real_stop = Runner.stop

    async def stop_then_release(self, reason="stopped"):
        await real_stop(self, reason)
        sim.release.set()

    async def user_quits(*args, **kwargs):
        await sim.reached.wait()

    monkeypatch.setattr(Runner, "stop", stop_then_release)
    monkeypatch.setattr(console.app, "run_console", user_quits)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    sim.close()
    argv = [a for a in scan_args(tmp_path / "q.db") if a != "--headless"]
    assert await run_cli(*argv) == cli.EXIT_INTERRUPTED
    out = capsys.readouterr().out
    assert "INCOMPLETE" in out and "console closed" in out and "No compromised packages found" not in out
