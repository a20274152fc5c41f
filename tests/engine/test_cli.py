"""The batchdeck command as a user meets it: exit codes, one-line errors, control from a second process."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.store import SCHEMA_VERSION

ROOT = Path(__file__).parents[2]


def cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, **(env or {})})


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "console.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def job_file(tmp_path: Path, items: int = 200, **spec) -> Path:
    path = tmp_path / "job.yaml"
    spec_text = ", ".join(f"{k}: {v}" for k, v in {"items": items, **spec}.items())
    path.write_text(f"kind: synthetic\nspec: {{{spec_text}}}\n"
                    "config:\n  batch:\n    performance: {retry_delay_base: 0.1}\n")
    return path


def wait_for_state(db: Path, run_id: int, states: set[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db) as conn:
                row = conn.execute("SELECT state FROM runs WHERE id=?", (run_id,)).fetchone()
        except sqlite3.OperationalError:      # the other process has not created the schema yet
            row = None
        state = row[0] if row else ""
        if state in states:
            return state
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} stayed {state!r}")


def done_count(db: Path, run_id: int) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM items WHERE run_id=? AND state='done'",
                                (run_id,)).fetchone()[0]
    except sqlite3.OperationalError:          # the other process has not created the schema yet
        return 0


@pytest.mark.parametrize("config_text,needle", [
    ("batch:\n  concurrency:\n    max_concurrent_requests: 99\n", "max_concurrent_requests"),
    ("batch:\n  concurrency: [1, 2\n", "line"),
    ("batch:\n  concurency: {}\n", "concurency"),
])
def test_bad_config_is_one_line_exit_2_and_names_the_problem(tmp_path, config_text, needle):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(config_text)
    result = cli("run", str(job_file(tmp_path)), "--db", str(tmp_path / "x.db"), "--config", str(cfg), "--headless")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert str(cfg) in lines[0] and needle in lines[0]


def test_bad_env_var_names_the_variable(tmp_path):
    result = cli("runs", "--db", str(tmp_path / "x.db"), env={"BATCHDECK_RETRY_ATTEMPTS": "eleven"})
    assert result.returncode == 2 and "BATCHDECK_RETRY_ATTEMPTS" in result.stderr


def test_bad_arguments_and_unknown_kind_and_corrupt_db(tmp_path):
    result = cli("runs", "--format", "xml")
    assert result.returncode == 2 and "invalid choice" in result.stderr and len(result.stderr.splitlines()) == 1
    bad_job = tmp_path / "job.yaml"
    bad_job.write_text("kind: nope\nspec: {}\n")
    result = cli("run", str(bad_job), "--db", str(tmp_path / "x.db"), "--headless")
    assert result.returncode == 2 and "unknown job kind 'nope'" in result.stderr
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not sqlite" * 100)
    result = cli("runs", "--db", str(corrupt))
    assert result.returncode == 2 and str(corrupt) in result.stderr and "Traceback" not in result.stderr


def test_run_runs_show_report(tmp_path):
    db = tmp_path / "r.db"
    result = cli("run", str(job_file(tmp_path, 300, permanent_fail_rate=0.05)), "--db", str(db), "--headless")
    assert result.returncode == 1, result.stderr      # failed items remain → 1
    cli("run", str(job_file(tmp_path, 50)), "--db", str(db), "--headless")
    runs = json.loads(cli("runs", "--format", "json", "--db", str(db)).stdout)
    assert [r["id"] for r in runs] == [2, 1]
    assert set(runs[0]) >= {"id", "kind", "state", "created_at", "parent"}
    report = json.loads(cli("report", "1", "--format", "json", "--db", str(db)).stdout)
    for key in ("run_id", "kind", "state", "total", "done", "failed", "skipped", "pending", "api_requests",
                "api_requests_saved", "rate_limited", "retries", "duration_s", "items_per_s"):
        assert key in report
    assert report["total"] == 300 and report["failed"] > 0 and report["done"] + report["failed"] == 300
    md = cli("report", "1", "--db", str(db)).stdout
    assert "| throughput |" in md and "client errors, which a replay as is repeats" in md
    shown = cli("show", "1", "--db", str(db)).stdout
    assert "task_graph" in shown and "replay batch" in shown
    replay = cli("replay", "1", "--db", str(db), "--headless")
    assert replay.returncode == 1 and "replay of run 1" in replay.stderr
    runs = json.loads(cli("runs", "--format", "json", "--db", str(db)).stdout)
    assert runs[0]["parent"] == 1


def wait_for_done(db: Path, run_id: int, at_least: int, timeout: float = 60) -> int:
    """Poll committed progress (the run is held by a gate, so this is no race)."""
    deadline = time.monotonic() + timeout
    while (done := done_count(db, run_id)) < at_least:
        assert time.monotonic() < deadline, f"run {run_id} stayed at {done} done"
        time.sleep(0.05)
    return done


def in_flight_count(db: Path, run_id: int) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM items WHERE run_id=? AND state='in_flight'",
                            (run_id,)).fetchone()[0]


def test_pause_resume_cancel_reach_a_run_in_another_process(tmp_path):
    db, gate = tmp_path / "ctl.db", tmp_path / "gate"
    proc = start("run", str(job_file(tmp_path, 2000, hold_from=200, gate_file=gate)), "--db", str(db),
                 "--headless")
    try:
        wait_for_done(db, 1, 200)                    # the first 200 are done, the rest wait on the gate
        assert cli("pause", "1", "--db", str(db)).returncode == 0
        wait_for_state(db, 1, {"paused"})
        assert done_count(db, 1) == 200
        assert cli("resume", "1", "--db", str(db)).returncode == 0
        wait_for_state(db, 1, {"running"})           # held again by the gate: the cancel cannot miss it
        assert cli("cancel", "1", "--db", str(db)).returncode == 0
        assert proc.wait(timeout=60) == 0
        assert wait_for_state(db, 1, {"cancelled"}) == "cancelled"
        assert in_flight_count(db, 1) == 0
    finally:
        proc.kill()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_a_run_stuck_in_a_wait_leaves_it_resumable_and_exits_130(tmp_path, sig):
    """The held items wait on a gate that never opens (as on an empty rate limiter)."""
    db, gate = tmp_path / "sig.db", tmp_path / "gate"
    proc = start("run", str(job_file(tmp_path, 300, hold_from=100, gate_file=gate)), "--db", str(db),
                 "--headless")
    try:
        wait_for_done(db, 1, 100)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 130
    finally:
        proc.kill()
    assert wait_for_state(db, 1, {"paused"}) == "paused"
    assert in_flight_count(db, 1) == 0
    gate.touch()
    result = cli("resume", "1", "--db", str(db), "--headless")
    assert result.returncode == 0, result.stderr
    assert done_count(db, 1) == 300


def test_a_database_of_schema_1_is_migrated(tmp_path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                           "INSERT INTO meta VALUES ('schema_version', '1');"
                           "CREATE TABLE file_errors (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, "
                           "repo TEXT NOT NULL, file_path TEXT NOT NULL, reason TEXT NOT NULL);")
    assert cli("runs", "--db", str(db)).returncode == 0
    with sqlite3.connect(db) as conn:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(file_errors)")]
        version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert "line" in columns and version == str(SCHEMA_VERSION)


def test_replay_with_another_config_runs_the_child_with_it(tmp_path):
    db = tmp_path / "rc.db"
    cli("run", str(job_file(tmp_path, 200, permanent_fail_rate=0.1)), "--db", str(db), "--headless")
    cfg = tmp_path / "slow.yaml"
    cfg.write_text("batch:\n  concurrency: {max_concurrent_requests: 2}\n  strategy: {default: conservative}\n")
    result = cli("replay", "1", "--db", str(db), "--config", str(cfg), "--create-only")
    assert result.returncode == 0, result.stderr
    child = int(result.stdout.strip())
    with sqlite3.connect(db) as conn:
        config = json.loads(conn.execute("SELECT config FROM runs WHERE id=?", (child,)).fetchone()[0])
        parent = conn.execute("SELECT parent_id FROM runs WHERE id=?", (child,)).fetchone()[0]
    assert parent == 1
    assert config["batch"]["concurrency"]["max_concurrent_requests"] == 2
    assert config["batch"]["strategy"]["default"] == "conservative"
