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
from engine.kinds import JobKind
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
    gate, held = asyncio.Event(), asyncio.Event()
    run_id = await engine.create_run("synthetic", {"items": 3000, "latency_ms": 2, "hold_from": 500})
    handle = await engine.start(run_id, services={"gate": gate, "held": held})
    await held.wait()                                   # the run is held mid-flight by the test's gate
    await handle.pause()
    paused_at = await engine.store.counts(run_id)
    assert handle.runner.counts.in_flight == 0 == paused_at.in_flight   # held items went back to pending
    assert paused_at.done >= 1 and paused_at.pending == 3000 - paused_at.done
    assert (await engine.store.get_run(run_id)).state is RunState.PAUSED
    assert (await engine.store.last_checkpoint(run_id))["reason"] == "pause"
    gate.set()
    await asyncio.sleep(0.3)                            # a paused run does not move, even with its gate open
    assert (await engine.store.counts(run_id)).done == paused_at.done
    await handle.resume()
    assert await handle.wait() is RunState.COMPLETED
    processed = handle.runner.processor.processed
    assert len(processed) == 3000
    recorded = await engine.store.fetchall("SELECT count(*), count(DISTINCT key) FROM items WHERE run_id=? "
                                           "AND state='done'", (run_id,))
    assert recorded == [(3000, 3000)]
    # only items interrupted while held ran twice; none that had finished
    assert all(n == 1 for key, n in processed.items() if int(key[5:]) < 500)


async def test_concurrency_change_applies_while_running(engine):
    gate, held = asyncio.Event(), asyncio.Event()
    run_id = await engine.create_run("synthetic", {"items": 2000, "hold_from": 0})
    handle = await engine.start(run_id, services={"gate": gate, "held": held})
    await held.wait()
    handle.runner.set_concurrency(2)
    # every item waits on the gate: workers above the limit finish theirs and park
    gate.set()
    gate.clear()
    await until(lambda: handle.runner.workers.busy <= 2 and handle.runner.counts.done > 0)
    handle.runner.set_concurrency(20)
    await until(lambda: handle.runner.workers.busy == 20)     # all twenty workers hold a gated item
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


async def until(condition, timeout: float = 60.0) -> None:
    """Poll a condition the run will reach (a state, a count): a generous deadline is only a
    safety net, never what makes the test pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never reached"
        await asyncio.sleep(0.01)


async def state_in(store, run_id: int, timeout: float = 60.0) -> RunState:
    """The state a run comes to rest in: not running, and no item in flight any more."""
    deadline = time.monotonic() + timeout
    while True:
        run = await store.get_run(run_id)
        at_rest = run.state is not RunState.RUNNING and (await store.counts(run_id)).in_flight == 0
        if at_rest or time.monotonic() > deadline:
            return run.state
        await asyncio.sleep(0.02)


async def test_a_control_command_from_another_connection_pauses_and_resumes(engine, tmp_path):
    gate, held = asyncio.Event(), asyncio.Event()
    run_id = await engine.create_run("synthetic", {"items": 4000, "latency_ms": 2, "hold_from": 200})
    handle = await engine.start(run_id, services={"gate": gate, "held": held})
    other = await Engine.open(tmp_path / "runs.db")
    try:
        await held.wait()
        await other.request(run_id, "pause")
        assert await state_in(other.store, run_id) is RunState.PAUSED
        assert (await other.store.counts(run_id)).in_flight == 0
        gate.set()
        await other.request(run_id, "resume")
        assert await handle.wait() is RunState.COMPLETED
    finally:
        await other.close()


@pytest.mark.parametrize("how", ["stop", "cancel", "control-cancel", "control-pause"])
async def test_a_run_blocked_in_a_wait_that_never_ends_stops_at_once_and_stays_resumable(engine, tmp_path, how):
    """Every worker waits on a gate never opened (as on an empty rate limiter): stop (the
    signal path), cancel and the control table still end the run, its items back to pending."""
    held = asyncio.Event()
    run_id = await engine.create_run("synthetic", {"items": 300, "hold_from": 100})
    handle = await engine.start(run_id, services={"gate": asyncio.Event(), "held": held})
    await held.wait()
    other = await Engine.open(tmp_path / "runs.db")
    try:
        if how == "stop":
            await handle.runner.stop("stopped by SIGINT; resume to continue")
        elif how == "cancel":
            await engine.request(run_id, "cancel")
        else:
            await other.request(run_id, how.split("-")[1])
        if how == "control-pause":
            assert await state_in(other.store, run_id) is RunState.PAUSED
            await handle.runner.stop()
        state = await asyncio.wait_for(handle.wait(), 60)
    finally:
        await other.close()
    assert state is (RunState.CANCELLED if "cancel" in how else RunState.PAUSED)
    counts = await engine.store.counts(run_id)
    assert counts.in_flight == 0 and counts.done >= 100 and counts.pending == 300 - counts.done
    if state is RunState.PAUSED:                 # resumable: it completes once the wait can end
        resumed = await engine.start(run_id, services={"gate": _open_gate()})
        assert await resumed.wait() is RunState.COMPLETED
        assert (await engine.store.counts(run_id)).done == 300


def _open_gate() -> asyncio.Event:
    gate = asyncio.Event()
    gate.set()
    return gate


class FailingPlan:
    """A plan that lists a page of items, then fails (a 500 on page 3) or waits forever."""

    kind = "synthetic"

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.listed = asyncio.Event()
        self.processed: dict[str, int] = {}

    async def plan(self, spec, ctx):
        from engine.errors import ServerError
        from engine.models import PlannedItem

        for i in range(50):
            yield PlannedItem(key=f"item-{i:07d}", payload={"i": i})
        self.listed.set()
        if self.mode == "fail":
            raise ServerError("GitHub server error 500 on GET /orgs/acme/repos?page=3", status_code=500)
        if self.mode == "wait":
            await asyncio.Event().wait()
        for i in range(50, 80):
            yield PlannedItem(key=f"item-{i:07d}", payload={"i": i})

    async def process(self, item, ctx):
        self.processed[item.key] = self.processed.get(item.key, 0) + 1


async def test_a_run_whose_planning_failed_or_was_stopped_resumes_and_completes(engine, monkeypatch):
    import engine.api as api

    jobs = iter([FailingPlan("fail"), FailingPlan("wait"), FailingPlan("ok")])  # one for each of the 3 starts
    monkeypatch.setattr(api, "load_kind", lambda name: JobKind(name, processor=lambda: next(jobs)))
    run_id = await engine.create_run("synthetic", {})
    failed = await engine.start(run_id)
    assert await asyncio.wait_for(failed.wait(), 60) is RunState.FAILED
    run = await engine.store.get_run(run_id)
    assert "500" in run.message
    assert (await engine.store.counts(run_id)).in_flight == 0
    waiting = await engine.start(run_id)                 # planning again, and stuck on a wait: SIGTERM ends it
    await waiting.runner.processor.listed.wait()
    await waiting.runner.stop("stopped by SIGTERM; resume to continue")
    assert await asyncio.wait_for(waiting.wait(), 60) is RunState.PAUSED
    assert (await engine.store.counts(run_id)).in_flight == 0
    resumed = await engine.start(run_id)
    assert await asyncio.wait_for(resumed.wait(), 60) is RunState.COMPLETED
    counts = await engine.store.counts(run_id)
    assert (counts.total, counts.done, counts.in_flight) == (80, 80, 0)


async def test_in_flight_items_of_a_dead_owner_go_back_to_pending_when_it_is_found_dead(tmp_path):
    db = tmp_path / "dead.db"
    async with await Engine.open(db, fast_config()) as eng:
        run_id = await eng.create_run("synthetic", {"items": 10})
        await eng.store.write("INSERT INTO items (run_id, seq, key, payload, state) VALUES (?, 1, 'a', '{}', "
                              "'in_flight')", (run_id,))
        await eng.store.write("UPDATE runs SET state='running', owner_pid=?, owner_host=?, heartbeat_at=? "
                              "WHERE id=?", (2**22 + 12345, os.uname().nodename, time.time(), run_id))
        assert [r.state for r in await eng.runs()] == [RunState.INTERRUPTED]
        counts = await eng.store.counts(run_id)
        assert (counts.pending, counts.in_flight) == (1, 0)


async def test_one_failed_request_is_one_failure_on_its_lane_breaker(tmp_path):
    """The client records each request's outcome on its lane's breaker; the runner must not
    record the same failure again (threshold 5 used to open after 3 failed requests)."""
    import httpx

    from engine.github.client import GitHubClient

    def always_500(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"message": "boom"})

    cfg = fast_config(retry_attempts=0, max_concurrent_requests=1)
    async with await Engine.open(tmp_path / "b.db", cfg) as eng:
        client = GitHubClient("http://sim.test", "t", transport=httpx.MockTransport(always_500),
                              points_per_minute=None)
        try:
            run_id = await eng.create_run("http-get", {"items": 3, "path": "/repos/acme/web"})
            handle = await eng.start(run_id, github=client)
            assert await handle.wait() is RunState.COMPLETED
        finally:
            await client.aclose()
        breaker = handle.runner.breakers.get("read")
        assert (await eng.store.counts(run_id)).failed == 3
        assert breaker.failures == 3 and breaker.state.value == "closed"


async def test_an_item_that_made_no_request_still_feeds_its_lane_breaker(engine):
    cfg = fast_config(retry_attempts=0, max_concurrent_requests=1)
    run_id = await engine.create_run("synthetic", {"items": 3, "fail_rate": 1.0}, cfg)
    handle = await engine.start(run_id, config=cfg)
    assert await handle.wait() is RunState.COMPLETED
    assert handle.runner.breakers.get("default").failures == 3


KILL_SCRIPT = """
import asyncio, sys
from engine.api import Engine
from engine.config import load_config
async def main():
    cfg = load_config(None, env={}, overrides={"max_concurrent_requests": 10, "checkpoint_interval": 200})
    async with await Engine.open(sys.argv[1], cfg) as eng:
        run_id = await eng.create_run("synthetic", {"items": 5000, "latency_ms": 1, "journal": sys.argv[2],
                                                    "hold_from": 2000, "gate_file": sys.argv[3]})
        print(run_id, flush=True)
        await (await eng.start(run_id)).wait()
asyncio.run(main())
"""


async def test_a_run_killed_with_sigkill_resumes_with_nothing_lost_or_redone(tmp_path):
    db, journal, gate = tmp_path / "kill.db", tmp_path / "journal.txt", tmp_path / "gate"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(db), str(journal), str(gate)],
                            stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).parents[2])
    run_id = int(proc.stdout.readline())
    deadline = time.monotonic() + 60
    done_before = 0
    while time.monotonic() < deadline:         # polling committed progress; the gate holds item 2000 on
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
    gate.touch()

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
    gate = asyncio.Event()
    run_id = await engine.create_run("synthetic", {"items": 1500, "latency_ms": 1, "hold_from": 500})
    handle = await engine.start(run_id, services={"gate": gate})

    class Huge:
        def memory_info(self):
            return type("mem", (), {"rss": 8 * 2**30})()

    handle.runner.telemetry.process = Huge()           # as if the process held 8 GB
    await until(lambda: handle.runner.stats.memory_pressure)    # seen by the ticker while the gate holds the run
    gate.set()
    assert await handle.wait() is RunState.COMPLETED
    reasons = [d.reason for d in handle.runner.sizer.history]
    assert any("memory" in r for r in reasons)
    assert handle.runner.sizer.batch_size == 1       # kept shrinking while the pressure lasted


class RespawningJob:
    """Every item spawns a follow-up whose key the run already has, as a repository item
    re-run after a crash spawns the file items it had spawned before the crash."""

    kind = "synthetic"

    def plan(self, spec, ctx):
        from engine.models import PlannedItem

        return [PlannedItem(key=f"item-{i}", payload={"i": i}) for i in range(20)]

    async def process(self, item, ctx):
        from engine.models import PlannedItem

        ctx.spawn(PlannedItem(key=f"item-{(item.payload['i'] + 1) % 20}", payload={}))


async def test_spawning_a_key_the_run_already_has_counts_it_once_and_the_run_completes(engine, monkeypatch):
    import engine.api as api

    monkeypatch.setattr(api, "load_kind", lambda name: JobKind(name, processor=RespawningJob))
    run_id = await engine.create_run("synthetic", {})
    handle = await engine.start(run_id)
    assert await asyncio.wait_for(handle.wait(), 60) is RunState.COMPLETED
    assert handle.runner.counts.total == 20 == (await engine.store.counts(run_id)).done
