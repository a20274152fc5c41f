"""SIGKILL of a `batchdeck scan` at known points, then resume: nothing lost, nothing twice.

Each point is a gate (tests/reliability/crash_driver.py) that holds the scan and says
HELD: the kill lands exactly there, on an idle machine or a loaded one. The long
version (more points, faults on) is ``bench/soak.py``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.loopback import loopback_simulator

ROOT = Path(__file__).parents[2]
IOCS = ROOT / "sample_configs" / "iocs" / "shai-hulud-2-packages.csv"
DRIVER = Path(__file__).with_name("crash_driver.py")


@pytest.fixture(scope="module")
def simulator():
    with loopback_simulator("--repos", "30", "--seed", "11") as url:
        yield url


def scan_args(simulator: str, db: Path) -> list[str]:
    return ["scan", "--headless", "--org", "acme", "--include-archived", "--include-forks", "--api-url", simulator,
            "--iocs", str(IOCS), "--db", str(db), "--format", "json"]


ENV = {**os.environ, "GITHUB_TOKEN": "crash-token"}


@pytest.mark.parametrize("point,n", [("plan", 1), ("process", 1), ("process", 12), ("process", 40)])
def test_sigkill_at_a_point_then_resume_records_every_item_once(simulator, tmp_path, point, n):
    db = tmp_path / "crash.db"
    proc = subprocess.Popen([sys.executable, str(DRIVER), point, str(n), "--", *scan_args(simulator, db)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=ENV)
    try:
        assert proc.stdout.readline().strip() == "HELD"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    resumed = subprocess.run([sys.executable, "-m", "console.cli", "resume", "1", "--headless", "--db", str(db)],
                             capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=120)
    assert resumed.returncode in (0, 1), resumed.stderr[-2000:]
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        state, = conn.execute("SELECT state FROM runs WHERE id=1").fetchone()
        states = dict(conn.execute("SELECT state, count(*) FROM items WHERE run_id=1 GROUP BY state"))
        keys = conn.execute("SELECT count(*), count(DISTINCT key) FROM items WHERE run_id=1").fetchone()
        found = {tuple(r) for r in conn.execute(
            "SELECT repo, file_path, package_name, version, kind FROM findings WHERE run_id=1")}
    assert state == "completed" and set(states) == {"done"}, (state, states)
    assert keys[0] == keys[1] and keys[0] > 30                  # every repository and file, each once
    truth = httpx.get(f"{simulator}/_sim/truth").json()["findings"]
    assert found == {(t["repo"], t["path"], t["package"], t["version"], t["kind"]) for t in truth}
