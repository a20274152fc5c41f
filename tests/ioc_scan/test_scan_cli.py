"""`batchdeck scan` as a user runs it: a simulator on loopback, a token, an IOC list, an output file."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.loopback import loopback_simulator

ROOT = Path(__file__).parents[2]
IOCS = ROOT / "sample_configs" / "iocs" / "shai-hulud-2-packages.csv"


@pytest.fixture(scope="module")
def simulator():
    with loopback_simulator("--repos", "40", "--seed", "3") as url:
        yield url


def scan(*args: str, token: str = "cli-token") -> subprocess.CompletedProcess:
    env = {**os.environ, "GITHUB_TOKEN": token}
    return subprocess.run([sys.executable, "-m", "console.cli", "scan", "--headless", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120)


def test_json_output_holds_the_planted_findings_and_exit_1(simulator, tmp_path):
    out = tmp_path / "findings.json"
    result = scan("--org", "acme", "--include-archived", "--include-forks", "--api-url", simulator,
                  "--iocs", str(IOCS), "--db", str(tmp_path / "s.db"), "--format", "json", "-o", str(out))
    assert result.returncode == 1, result.stderr          # something matched
    findings = json.loads(out.read_text())["matches"]
    truth = httpx.get(f"{simulator}/_sim/truth").json()["findings"]
    assert {(f["repo"], f["file_path"], f["package_name"], f["version"], f["kind"]) for f in findings} == \
        {(t["repo"], t["path"], t["package"], t["version"], t["kind"]) for t in truth}
    assert "cli-token" not in result.stderr + result.stdout


def test_a_repository_that_cannot_be_scanned_is_named(simulator, tmp_path):
    result = scan("--repo", "acme/does-not-exist", "--api-url", simulator, "--iocs", str(IOCS),
                  "--db", str(tmp_path / "m.db"))
    assert result.returncode == 1
    assert "acme/does-not-exist" in result.stdout and "404" in result.stdout
    assert "INCOMPLETE" in result.stdout and "No compromised packages found" not in result.stdout


def test_a_bad_token_is_one_line_and_exit_2(simulator, tmp_path):
    result = scan("--org", "acme", "--api-url", simulator, "--iocs", str(IOCS), "--db", str(tmp_path / "b.db"),
                  token="bad-token")
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("batchdeck: error")]
    assert error_lines == [f"batchdeck: error: GitHub rejected the token (401 Bad credentials) for {simulator}"]
    assert "Traceback" not in result.stderr
    assert "INCOMPLETE" in result.stdout and "No compromised packages found" not in result.stdout


def test_the_demo_runs_headless_and_prints_findings_and_the_report(tmp_path):
    """What `make demo` promises, minus the terminal: simulator up, scan, findings, report, exit 0."""
    result = subprocess.run([sys.executable, "-m", "console.cli", "demo", "--headless", "--repos", "25",
                             "--latency-ms", "5", "--db", str(tmp_path / "demo.db")],
                            capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "finding(s)" in result.stdout and "performance report" in result.stdout
    assert "simulator: http://127.0.0.1:" in result.stderr


CANARY = "canary-5ecret-d0-not-leak"


def test_credentials_in_the_api_url_become_the_token_and_are_stored_or_shown_nowhere(simulator, tmp_path):
    db, out = tmp_path / "c.db", tmp_path / "f.json"
    with_secret = simulator.replace("http://", f"http://someone:{CANARY}@")
    result = scan("--org", "acme", "--api-url", with_secret, "--iocs", str(IOCS), "--db", str(db),
                  "--format", "json", "-o", str(out), token="")
    assert result.returncode == 1, result.stderr            # scanned (authenticated by the userinfo), found
    assert "Traceback" not in result.stderr
    assert json.loads(out.read_text())["run"]["api_url"] == simulator
    shown = subprocess.run([sys.executable, "-m", "console.cli", "show", "1", "--db", str(db)],
                           capture_output=True, text=True, cwd=ROOT, timeout=60)
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    for place in (result.stdout, result.stderr, out.read_text(), shown.stdout, shown.stderr, dump):
        assert CANARY not in place
    assert simulator in dump                                  # the run keeps the URL, without its userinfo


def test_outputs_are_private_and_an_unwritable_one_is_refused_before_scanning(simulator, tmp_path):
    out = tmp_path / "f.csv"
    result = scan("--org", "acme", "--api-url", simulator, "--iocs", str(IOCS), "--db", str(tmp_path / "p.db"),
                  "--format", "csv", "-o", str(out))
    assert result.returncode == 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(f"{out}.coverage.json").stat().st_mode) == 0o600
    report = subprocess.run([sys.executable, "-m", "console.cli", "report", "1", "--db", str(tmp_path / "p.db"),
                             "-o", str(tmp_path / "r.md")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert report.returncode == 0 and stat.S_IMODE((tmp_path / "r.md").stat().st_mode) == 0o600
    bad = subprocess.run([sys.executable, "-m", "console.cli", "report", "1", "--db", str(tmp_path / "p.db"),
                          "-o", str(tmp_path / "no" / "r.md")], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "cannot write" in bad.stderr

    refused = scan("--org", "acme", "--api-url", simulator, "--iocs", str(IOCS), "--db", str(tmp_path / "q.db"),
                   "-o", str(tmp_path / "missing" / "f.json"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"batchdeck: error: {tmp_path / 'missing' / 'f.json'}: cannot write here "
        "(no such directory, not writable, or a directory)"]


def test_a_db_in_a_missing_directory_is_an_error_for_reading_commands_and_creates_nothing(tmp_path):
    for command in (["runs"], ["findings", "1"], ["show", "1"], ["resume", "1"], ["cancel", "1"]):
        result = subprocess.run([sys.executable, "-m", "console.cli", *command, "--db", str(tmp_path / "typo" / "x.db")],
                                capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
        assert "no such directory" in result.stderr
    assert not (tmp_path / "typo").exists()


def no_token_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "GH_TOKEN")}
    env["PATH"] = str(Path(sys.executable).parent)            # no `gh` to ask for a token
    return env


def test_an_unauthenticated_org_scan_needs_yes_without_a_terminal(simulator, tmp_path):
    args = [sys.executable, "-m", "console.cli", "scan", "--headless", "--org", "acme", "--api-url", simulator,
            "--iocs", str(IOCS), "--db", str(tmp_path / "u.db")]
    refused = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=60, env=no_token_env(),
                             stdin=subprocess.DEVNULL)
    assert refused.returncode == 2
    warning, error = refused.stderr.strip().splitlines()
    assert "no GitHub token" in warning and "60 requests an hour" in warning
    assert error.startswith("batchdeck: error: no GitHub token") and "--yes" in error
    assert not (tmp_path / "u.db").exists()                   # nothing started
    few = subprocess.run([*args[:5], "--repo", "acme/does-not-exist", *args[7:]], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, env=no_token_env(), stdin=subprocess.DEVNULL)
    assert "60 requests an hour" in few.stderr and "1 repositories" in few.stderr
    assert few.returncode == 1                                # a handful: warned, scanned (and the 404 named)


def test_confirm_unauthenticated_asks_in_a_terminal(monkeypatch):
    from console import cli
    from engine.jobs.ioc_scan.cli import confirm_unauthenticated

    args = cli.build_parser().parse_args(["scan", "--org", "acme"])
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    confirm_unauthenticated(args, None)                   # yes: goes on
    monkeypatch.setattr("builtins.input", lambda prompt: "")
    with pytest.raises(cli.InputError, match="not started"):
        confirm_unauthenticated(args, 40)                 # the default is no


def test_resume_takes_a_token_closes_its_session_and_exits_like_scan(simulator, tmp_path):
    db, out = tmp_path / "r.db", tmp_path / "resumed.json"
    failed = scan("--org", "acme", "--include-archived", "--include-forks", "--api-url", simulator,
                  "--iocs", str(IOCS), "--db", str(db), token="bad-token")
    assert failed.returncode == 2
    resumed = subprocess.run([sys.executable, "-m", "console.cli", "resume", "1", "--headless", "--db", str(db),
                              "--token", "cli-token", "--format", "json", "-o", str(out)],
                             capture_output=True, text=True, cwd=ROOT, timeout=120, env=no_token_env())
    assert resumed.returncode == 1, resumed.stderr            # findings, like the scan
    assert "Unclosed client session" not in resumed.stderr and "Unclosed" not in resumed.stderr
    document = json.loads(out.read_text())
    truth = httpx.get(f"{simulator}/_sim/truth").json()["findings"]
    assert document["complete"] is True and len(document["matches"]) == len(truth)


@pytest.mark.parametrize("target,url", [(["--org", "no-such-org"], None), (["--org", "acme"], "http://127.0.0.1:9")])
def test_a_scan_that_could_not_list_anything_says_incomplete_in_the_file(simulator, tmp_path, target, url):
    """A 404 org and an unreachable --api-url: the file must not read like a clean result.

    Listing is work like any other (a failed listing page is a failed item), so the run
    ends with that item failed and names the target it could not list; exit 1."""
    out = tmp_path / "f.json"
    result = scan(*target, "--api-url", url or simulator, "--iocs", str(IOCS), "--db", str(tmp_path / "n.db"),
                  "--format", "json", "-o", str(out))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    document = json.loads(out.read_text())
    assert document["complete"] is False
    assert [gap["target"] for gap in document["coverage"]["targets_not_listed"]] == [f"list:org/{target[1]}?page=1"]
    assert document["verdict"].startswith("INCOMPLETE") and "No compromised" not in out.read_text()
    assert "INCOMPLETE" in result.stderr


def test_an_unauthenticated_org_scan_with_yes_completes_through_rest_only(tmp_path):
    """`scan --org acme --yes` with no token: GitHub's GraphQL wants one, so the scan reads
    REST alone and completes (the simulator's 60-an-hour bucket raised so 12 repos fit)."""
    config = tmp_path / "sim.json"
    config.write_text(json.dumps({"repos": 12, "seed": 11, "unauthenticated_limit": 100000}))
    proc = subprocess.Popen([sys.executable, "-m", "engine.sim.server", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        url = proc.stdout.readline().strip()
        out = tmp_path / "anon.json"
        result = subprocess.run([sys.executable, "-m", "console.cli", "scan", "--headless", "--org", "acme", "--yes",
                                 "--api-url", url, "--iocs", str(IOCS), "--db", str(tmp_path / "anon.db"),
                                 "--format", "json", "-o", str(out)],
                                capture_output=True, text=True, cwd=ROOT, timeout=120, env=no_token_env(),
                                stdin=subprocess.DEVNULL)
        stats = httpx.get(f"{url}/_sim/stats").json()
        truth = httpx.get(f"{url}/_sim/truth").json()["findings"]
        public = {r["full_name"] for r in httpx.get(f"{url}/orgs/acme/repos?per_page=100").json()
                  if not r["archived"] and not r["fork"]}        # what an anonymous default scan covers
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    report = json.loads(out.read_text())
    assert result.returncode == 1 and report["complete"] is True     # 1: findings, not gaps
    assert stats["graphql_queries"] == 0 and "POST /graphql" not in stats["requests"]
    got = {(m["repo"], m["file_path"], m["package_name"], m["version"]) for m in report["matches"]}
    expected = {(t["repo"], t["path"], t["package"], t["version"]) for t in truth if t["repo"] in public}
    assert expected and got == expected
