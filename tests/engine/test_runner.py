"""The runner end to end on the synthetic job: counts, retries, pause, replay, crash."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.api import Engine
from engine.errors import InputError
from engine.models import RunState

from .conftest import fast_config


async def test_ten_thousand_items_with_five_percent_failures_balance_and_retry(engine):
    run_id = await engine.create_run("synthetic", {"items": 10_000, "fail_rate": 0.05, "seed": 3})
    handle = await engine.start(run_id)
    # the invariant holds in memory while the run is moving, not only at the end
    while not handle.task.done():
        assert handle.runner.counts.balanced()
        await asyncio.sleep(0.01)
    assert await handle.wait() is RunState.COMPLETED
    counts = await engine.store.counts(run_id)
    assert counts.balanced() and counts.total == 10_000
    assert (counts.done, counts.failed, counts.pending, counts.in_flight) == (10_000, 0, 0, 0)
    processor = handle.runner.processor
    failed_first = [k for k, n in processor.processed.items() if n > 1]
    assert 350 < len(failed_first) < 650          # ~5% of 10,000 failed their first try...
    retried = await engine.store.fetchall(
        "SELECT DISTINCT item_id FROM attempts WHERE run_id=? AND outcome='retry'", (run_id,))
    assert len(retried) == len(failed_first)      # ...and every one of them was retried, once
    assert all(n <= 2 for n in processor.processed.values())
    report = await engine.report(run_id)
    assert report["retries"] == len(failed_first)
    assert report["errors_by_class"] == {"server": len(failed_first)}


async def test_permanent_failures_end_failed_with_replay_artifacts(engine):
    run_id = await engine.create_run("synthetic", {"items": 500, "permanent_fail_rate": 0.04, "seed": 5})
    handle = await engine.start(run_id)
    assert await handle.wait() is RunState.COMPLETED
    counts = await engine.store.counts(run_id)
    assert counts.failed > 0 and counts.done + counts.failed == 500
    replays = await engine.store.list_artifacts(run_id, "replay")
    failed_batches = {row[0] for row in await engine.store.fetchall(
        "SELECT DISTINCT batch_id FROM items WHERE run_id=? AND state='failed'", (run_id,))}
    assert {a["batch_id"] for a in replays} == failed_batches
    art = replays[0]["data"]
    assert art["errors_by_class"] == {"client": art["failed"]}
    assert "fix the input" in art["recommendation"]
    assert art["config"]["batch"]["performance"]["retry_attempts"] == 3
    assert (await engine.store.list_artifacts(run_id, "task_graph"))[0]["data"]["planned"] == 500


async def test_pause_then_resume_processes_no_item_twice(engine):
    run_id = await engine.create_run("synthetic", {"items": 3000, "latency_ms": 2})
    handle = await engine.start(run_id)
    while handle.runner.counts.done < 500:
        await asyncio.sleep(0.01)
    await handle.pause()
    paused_at = (await engine.store.counts(run_id)).done
    assert handle.runner.counts.in_flight == 0          # in-flight items finished, queued ones went back
    await asyncio.sleep(0.3)
    assert (await engine.store.counts(run_id)).done == paused_at   # nothing moves while paused
    assert (await engine.store.get_run(run_id)).state is RunState.PAUSED
    assert (await engine.store.last_checkpoint(run_id))["reason"] == "pause"
    await handle.resume()
    assert await handle.wait() is RunState.COMPLETED
    processed = handle.runner.processor.processed
    assert len(processed) == 3000 and set(processed.values()) == {1}


async def test_concurrency_change_applies_while_running(engine):
    run_id = await engine.create_run("synthetic", {"items": 2000, "latency_ms": 5})
    handle = await engine.start(run_id)
    await asyncio.sleep(0.1)
    handle.runner.set_concurrency(2)
    await asyncio.sleep(0.2)
    assert handle.runner._busy <= 2
    handle.runner.set_concurrency(20)
    await asyncio.sleep(0.2)
    assert handle.runner._busy > 2
    await handle.cancel()
    assert await handle.wait() is RunState.CANCELLED
    counts = await engine.store.counts(run_id)
    assert counts.balanced() and counts.pending > 0 and counts.in_flight == 0


async def test_replay_of_a_failed_batch_holds_exactly_its_failed_items(engine):
    run_id = await engine.create_run("synthetic", {"items": 400, "permanent_fail_rate": 0.05, "seed": 9})
    assert await (await engine.start(run_id)).wait() is RunState.COMPLETED
    batch = (await engine.store.list_artifacts(run_id, "replay"))[0]["batch_id"]
    expected = {it["key"] for it in await engine.store.failed_items(run_id, batch)}
    child = await engine.replay(run_id, batch, overrides={"max_concurrent_requests": 5})
    run = await engine.store.get_run(child)
    assert run.parent_id == run_id and run.kind == "synthetic"
    assert run.config["batch"]["concurrency"]["max_concurrent_requests"] == 5
    keys = {r[0] for r in await engine.store.fetchall("SELECT key FROM items WHERE run_id=?", (child,))}
    assert keys == expected
    # the child runs with its own config and fails the same items again (client errors)
    assert await (await engine.start(child)).wait() is RunState.COMPLETED
    assert (await engine.store.counts(child)).failed == len(expected)


async def test_replay_of_a_run_without_failed_items_is_refused(engine):
    run_id = await engine.create_run("synthetic", {"items": 50})
    assert await (await engine.start(run_id)).wait() is RunState.COMPLETED
    with pytest.raises(InputError, match="no failed items"):
        await engine.replay(run_id)


async def test_a_control_command_from_another_connection_pauses_and_resumes(engine, tmp_path):
    run_id = await engine.create_run("synthetic", {"items": 4000, "latency_ms": 2})
    handle = await engine.start(run_id)
    other = await Engine.open(tmp_path / "runs.db")
    try:
        while handle.runner.counts.done < 200:
            await asyncio.sleep(0.01)
        await other.request(run_id, "pause")
        for _ in range(100):
            if (await other.store.get_run(run_id)).state is RunState.PAUSED:
                break
            await asyncio.sleep(0.05)
        assert (await other.store.get_run(run_id)).state is RunState.PAUSED
        await other.request(run_id, "resume")
        assert await handle.wait() is RunState.COMPLETED
    finally:
        await other.close()


KILL_SCRIPT = """
import asyncio, sys
from engine.api import Engine
from engine.config import load_config
async def main():
    cfg = load_config(None, env={}, overrides={"max_concurrent_requests": 10, "checkpoint_interval": 200})
    async with await Engine.open(sys.argv[1], cfg) as eng:
        run_id = await eng.create_run("synthetic", {"items": 5000, "latency_ms": 1, "journal": sys.argv[2]})
        print(run_id, flush=True)
        await (await eng.start(run_id)).wait()
asyncio.run(main())
"""


async def test_a_run_killed_with_sigkill_resumes_with_nothing_lost_or_redone(tmp_path):
    db, journal = tmp_path / "kill.db", tmp_path / "journal.txt"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(db), str(journal)], stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).parents[2])
    run_id = int(proc.stdout.readline())
    deadline = time.monotonic() + 60
    done_before = 0
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            done_before = conn.execute("SELECT count(*) FROM items WHERE run_id=? AND state='done'",
                                       (run_id,)).fetchone()[0]
        if done_before >= 1500:
            break
        await asyncio.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as conn:
        done_keys = {r[0] for r in conn.execute("SELECT key FROM items WHERE run_id=? AND state='done'", (run_id,))}
    assert 1500 <= len(done_keys) < 5000
    journal_before = journal.read_text().split()

    async with await Engine.open(db, fast_config()) as eng:
        await eng.store.detect_interrupted()
        assert (await eng.store.get_run(run_id)).state is RunState.INTERRUPTED
        handle = await eng.start(run_id)
        assert await handle.wait() is RunState.COMPLETED
        counts = await eng.store.counts(run_id)
    assert counts.total == 5000 and counts.done == 5000 and counts.balanced()
    redone = handle.runner.processor.processed
    assert not done_keys & set(redone)                     # nothing recorded done ran again
    assert set(journal_before) | set(redone) == {f"item-{i:07d}" for i in range(5000)}   # nothing lost
    assert len(journal_before) == len(set(journal_before))  # the killed process ran nothing twice either
    # What ran twice is only what the killed process had not yet committed (in flight, or
    # finished within its last ~100 ms flush window): at-least-once, never a recorded item.
    assert set(journal_before) & set(redone) <= set(journal_before) - done_keys
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT key) FROM items WHERE run_id=?",
                            (run_id,)).fetchone() == (5000, 5000)


async def test_state_survives_reopen_and_interrupted_detection_uses_the_heartbeat(tmp_path):
    db = tmp_path / "hb.db"
    async with await Engine.open(db, fast_config()) as eng:
        run_id = await eng.create_run("synthetic", {"items": 10})
        await eng.store.write("UPDATE runs SET state='running', owner_pid=?, owner_host='elsewhere', "
                              "heartbeat_at=? WHERE id=?", (os.getpid(), time.time() - 60, run_id))
        assert await eng.store.detect_interrupted() == [run_id]
        handle = await eng.start(run_id)
        assert await handle.wait() is RunState.COMPLETED


async def test_memory_above_the_limit_shrinks_batches(engine):
    run_id = await engine.create_run("synthetic", {"items": 4000, "latency_ms": 5})   # a few seconds
    handle = await engine.start(run_id)

    class Huge:
        def memory_info(self):
            return type("mem", (), {"rss": 8 * 2**30})()

    handle.runner._os_process = Huge()           # as if the process held 8 GB
    assert await handle.wait() is RunState.COMPLETED
    reasons = [d.reason for d in handle.runner.sizer.history]
    assert any("memory" in r for r in reasons)
    assert handle.runner.sizer.batch_size == 1       # kept shrinking while the pressure lasted
