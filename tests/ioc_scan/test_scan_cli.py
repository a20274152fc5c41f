"""`batchdeck scan` as a user runs it: a simulator on loopback, a token, an IOC list, an output file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).parents[2]
IOCS = ROOT / "sample_configs" / "iocs" / "shai-hulud-2-packages.csv"


@pytest.fixture(scope="module")
def simulator():
    proc = subprocess.Popen([sys.executable, "-m", "engine.sim.server", "--repos", "40", "--seed", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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


def test_the_demo_runs_headless_and_prints_findings_and_the_report(tmp_path):
    """What `make demo` promises, minus the terminal: simulator up, scan, findings, report, exit 0."""
    result = subprocess.run([sys.executable, "-m", "console.cli", "demo", "--headless", "--repos", "25",
                             "--latency-ms", "5", "--db", str(tmp_path / "demo.db")],
                            capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "finding(s)" in result.stdout and "performance report" in result.stdout
    assert "simulator: http://127.0.0.1:" in result.stderr
