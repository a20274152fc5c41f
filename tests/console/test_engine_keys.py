"""The console's keys against the real engine running the synthetic job.

What an operator relies on: pausing stops progress and resuming restarts it,
``+`` raises the engine's concurrency, a replay creates a linked child run
that shows in the browser, export writes the report, ``r`` resumes a paused
run, quitting pauses an in-process run, and an attached console follows a run
executed by a second process and its pause reaches that process.

No timing is asserted: every wait is for a condition, with a generous bound
that only turns a hang into a failure.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from console_fakes import settle
from textual.widgets import Checkbox, DataTable, Input

from console.app import BatchdeckApp
from console.panes.batches import BatchTable
from console.screens.dialogs import ConfirmScreen, ExportScreen
from console.screens.replay import ReplayScreen
from engine.api import Engine
from engine.audit import entries
from engine.config import load_config
from engine.models import RunState

ROOT = Path(__file__).parents[2]
BOUND_S = 40.0


def config(**overrides):
    base = {"retry_delay_base": 0.1, "max_concurrent_requests": 4, "default_strategy": "parallel",
            "checkpoint_interval": 200}
    return load_config(None, env={}, overrides={**base, **overrides})


@pytest.fixture
async def engine(tmp_path):
    eng = await Engine.open(tmp_path / "console.db", config())
    yield eng
    await eng.close()


def held(tmp_path, hold_from: int = 19_000) -> dict:
    """Spec keys that keep a run from ending before the test ends it: items from ``hold_from``
    on wait for ``tmp_path/gate`` (see engine/jobs/synthetic.py)."""
    return {"hold_from": hold_from, "gate_file": str(tmp_path / "gate")}


async def until(pilot, condition, what: str, bound: float = BOUND_S) -> None:
    """Refresh the console until ``condition()`` holds (or fail after ``bound`` seconds)."""
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            told = [n.message for n in pilot.app._notifications]
            raise AssertionError(f"timed out waiting for: {what}; the console said: {told}")
        await pilot.app.refresh_snapshot()
        await pilot.pause(0.05)


async def pause_committed(pilot, engine, run_id: int, bound: float = BOUND_S) -> None:
    """The state reads paused at once; in-flight items then finish and the pause checkpoint commits."""
    deadline = time.monotonic() + bound
    while ((await engine.store.last_checkpoint(run_id)) or {}).get("reason") != "pause":
        assert time.monotonic() < deadline, "the pause checkpoint was never written"
        await pilot.pause(0.05)


def done(app) -> int:
    return app.snapshot.counts.done if app.snapshot else -1


async def audited(pilot, engine, run_id: int, count: int, bound: float = BOUND_S) -> list[tuple[str, str | None, str]]:
    """(action, detail, origin) of the run's audit log once it holds ``count`` entries (a row is written
    after the command it records has taken effect)."""
    deadline = time.monotonic() + bound
    while len(found := await entries(engine.store, run_id)) < count:
        assert time.monotonic() < deadline, f"audit log: {found}"
        await pilot.pause(0.05)
    return [(e.action, e.arg, e.origin) for e in found]


def state(app) -> RunState | None:
    return app.snapshot.run.state if app.snapshot else None


async def test_space_pauses_progress_and_resumes_it(engine, tmp_path):
    run_id = await engine.create_run("synthetic", {"items": 20_000, "latency_ms": 5, "seed": 1, **held(tmp_path)})
    handle = await engine.start(run_id)
    app = BatchdeckApp(engine, source=handle.source, export_dir=tmp_path)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: done(app) > 50, "progress")
            await pilot.press("space")
            await until(pilot, lambda: state(app) == RunState.PAUSED, "paused state")
            await pause_committed(pilot, engine, run_id)
            frozen = (await engine.store.counts(run_id)).done
            for _ in range(10):                      # several refreshes later, nothing moved
                await pilot.app.refresh_snapshot()
                await pilot.pause(0.05)
            assert (await engine.store.counts(run_id)).done == frozen
            assert done(app) == frozen
            await pilot.press("space")
            await until(pilot, lambda: done(app) > frozen, "progress after resume")
            assert state(app) == RunState.RUNNING
            # each key recorded once, as the console's
            assert await audited(pilot, engine, run_id, 2) == [("pause", None, "console"), ("resume", None, "console")]
    finally:
        await handle.stop()


async def test_plus_raises_the_engines_concurrency_and_minus_lowers_it(engine, tmp_path):
    # sequential holds concurrency at 1 by itself, so any rise is the operator's
    roomy = config(max_concurrent_requests=20, default_strategy="sequential")
    run_id = await engine.create_run("synthetic", {"items": 20_000, "latency_ms": 5, "seed": 2, **held(tmp_path)},
                                     roomy)
    handle = await engine.start(run_id)
    app = BatchdeckApp(engine, source=handle.source, export_dir=tmp_path)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: done(app) > 0, "progress")
            before = handle.runner.sizer.concurrency
            await pilot.press("plus")
            await until(pilot, lambda: handle.runner.sizer.concurrency == before + 1, "engine concurrency +1")
            await until(pilot, lambda: app.snapshot.concurrency == before + 1, "header shows it")
            await pilot.press("minus")
            await until(pilot, lambda: handle.runner.sizer.concurrency == before, "engine concurrency back")
            await pilot.press("s")     # sequential → parallel (the table's order)
            await until(pilot, lambda: handle.runner.sizer.strategy.value == "parallel", "engine strategy")
            assert await audited(pilot, engine, run_id, 3) == [
                ("concurrency", str(before + 1), "console"), ("concurrency", str(before), "console"),
                ("strategy", "parallel", "console")]
    finally:
        await handle.stop()


async def test_R_replays_a_failed_batch_as_a_linked_child_shown_in_the_browser(engine, tmp_path):
    run_id = await engine.create_run("synthetic", {"items": 300, "permanent_fail_rate": 0.05, "seed": 4})
    handle = await engine.start(run_id)
    assert await handle.wait() == RunState.COMPLETED
    app = BatchdeckApp(engine, source=handle.source, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(BatchTable)
        await until(pilot, lambda: any(b.failed for b in table.rows), "a batch with failures")
        table.cursor = next(i for i, b in enumerate(table.rows) if b.failed)
        batch = table.selected
        await pilot.press("R")
        await pilot.pause()
        assert isinstance(app.screen, ReplayScreen)
        box = app.screen.query_one("#replay-concurrency", Input)
        box.value = "2"
        app.screen.query_one("#replay-start", Checkbox).value = False
        await pilot.press("ctrl+s")
        await settle(pilot)
        runs = await engine.store.list_runs()
        child = next(r for r in runs if r.parent_id == run_id)
        assert (await engine.store.counts(child.id)).total == batch.failed
        assert child.config["batch"]["concurrency"]["max_concurrent_requests"] == 2
        browser = app.screen.query_one("#runs", DataTable)
        await until(pilot, lambda: str(child.id) in {k.value for k in browser.rows}, "child in the browser")
        assert await audited(pilot, engine, run_id, 1) == [
            ("replay", f"run {child.id}: batch #{batch.id}", "console")]


async def test_replay_dialog_refuses_out_of_range_values(engine, tmp_path):
    run_id = await engine.create_run("synthetic", {"items": 200, "permanent_fail_rate": 0.1, "seed": 4})
    handle = await engine.start(run_id)
    await handle.wait()
    app = BatchdeckApp(engine, source=handle.source, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(BatchTable)
        await until(pilot, lambda: any(b.failed for b in table.rows), "a batch with failures")
        table.cursor = next(i for i, b in enumerate(table.rows) if b.failed)
        await pilot.press("R")
        await pilot.pause()
        app.screen.query_one("#replay-retries", Input).value = "99"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ReplayScreen)
        assert "outside 0..10" in str(app.screen.query_one("#replay-error").render())
        assert [r for r in await engine.store.list_runs() if r.parent_id == run_id] == []


async def test_E_exports_the_report_to_the_named_file(engine, tmp_path):
    run_id = await engine.create_run("synthetic", {"items": 200, "seed": 5})
    handle = await engine.start(run_id)
    await handle.wait()
    app = BatchdeckApp(engine, source=handle.source, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("E")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        target = tmp_path / "out" / "report.md"
        app.screen.query_one(Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        await until(pilot, target.exists, "report file")
        assert f"{run_id}" in target.read_text() and "synthetic" in target.read_text()


async def test_r_resumes_a_paused_run_selected_in_the_browser(engine, tmp_path):
    run_id = await engine.create_run("synthetic", {"items": 600, "latency_ms": 2, "seed": 6,
                                                   **held(tmp_path, 100)})
    handle = await engine.start(run_id)
    while (await engine.store.counts(run_id)).done < 100:      # the gate holds item 100 on: no race
        await asyncio.sleep(0.02)
    assert await handle.stop() == RunState.PAUSED
    (tmp_path / "gate").touch()
    app = BatchdeckApp(engine, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await pilot.pause()
        await pilot.press("r")
        await until(pilot, lambda: app.snapshot is not None and state(app) == RunState.COMPLETED,
                    "the resumed run completes")
        assert (await engine.store.counts(run_id)).done == 600


async def test_q_pauses_the_in_process_run_before_exiting(engine, tmp_path):
    run_id = await engine.create_run("synthetic", {"items": 20_000, "latency_ms": 5, "seed": 7, **held(tmp_path)})
    handle = await engine.start(run_id)
    app = BatchdeckApp(engine, source=handle.source, export_dir=tmp_path)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: done(app) > 0, "progress")
            await pilot.press("q")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await settle(pilot)
        assert app.return_value == 130
        assert (await engine.store.get_run(run_id)).state == RunState.PAUSED
        # one row for the quit: `drive` (console/cli.py) adds no "console closed" stop after a 130
        assert [(e.action, e.arg, e.origin) for e in await entries(engine.store, run_id)] == [
            ("pause", "quitting the console", "console")]
        assert await engine.store.list_checkpoints(run_id)
    finally:
        await handle.stop()


async def test_ctrl_c_pauses_the_in_process_run_and_exits_at_once_like_sigint(engine, tmp_path):
    run_id = await engine.create_run("synthetic", {"items": 20_000, "latency_ms": 5, "seed": 7, **held(tmp_path)})
    handle = await engine.start(run_id)
    app = BatchdeckApp(engine, source=handle.source, export_dir=tmp_path)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: done(app) > 0, "progress")
            await pilot.press("ctrl+c")
            await settle(pilot)
        assert app.return_value == 130
        assert (await engine.store.get_run(run_id)).state == RunState.PAUSED
    finally:
        await handle.stop()


SECOND_PROCESS = textwrap.dedent("""
    import asyncio, sys
    from engine.api import Engine
    from engine.config import load_config

    async def main():
        cfg = load_config(None, env={}, overrides={"retry_delay_base": 0.1, "max_concurrent_requests": 4})
        engine = await Engine.open(sys.argv[1], cfg)
        run_id = await engine.create_run("synthetic", {"items": 50000, "latency_ms": 5, "seed": 8,
                                                       "hold_from": 49_000, "gate_file": sys.argv[1] + ".gate"})
        handle = await engine.start(run_id)
        print(run_id, flush=True)
        await handle.wait()
        await engine.close()

    asyncio.run(main())
""")


async def test_attached_console_follows_a_second_process_and_its_pause_reaches_it(tmp_path):
    db = tmp_path / "shared.db"
    proc = subprocess.Popen([sys.executable, "-c", SECOND_PROCESS, str(db)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ})
    try:
        run_id = int(await asyncio.to_thread(proc.stdout.readline))
        engine = await Engine.open(db, config())
        try:
            app = BatchdeckApp(engine, export_dir=tmp_path)          # `batchdeck console`: no source
            async with app.run_test(size=(120, 40)) as pilot:
                await until(pilot, lambda: app.snapshot is not None and app.snapshot.run.id == run_id,
                            "attached to the other process's run")
                assert app.mode == "attached"
                first = done(app)
                await until(pilot, lambda: done(app) > first, "progress seen through SQLite")
                await pilot.press("space")
                await until(pilot, lambda: state(app) == RunState.PAUSED, "the other process paused")
                await pause_committed(pilot, engine, run_id)
                frozen = (await engine.store.counts(run_id)).done
                await asyncio.sleep(0.5)
                assert (await engine.store.counts(run_id)).done == frozen
                await pilot.press("c")
                await pilot.pause()
                await pilot.press("y")
                await until(pilot, lambda: state(app) == RunState.CANCELLED, "the other process cancelled")
        finally:
            await engine.close()
        assert await asyncio.to_thread(proc.wait, 60) == 0
    finally:
        proc.kill()


async def test_R_with_a_filter_replays_exactly_the_failed_items_it_shows_after_counting_them(engine, tmp_path):
    run_id = await engine.create_run("synthetic", {"items": 400, "permanent_fail_rate": 0.05, "seed": 9})
    handle = await engine.start(run_id)
    assert await handle.wait() == RunState.COMPLETED
    failed = (await engine.store.counts(run_id)).failed
    app = BatchdeckApp(engine, source=handle.source, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(BatchTable)
        await until(pilot, lambda: sum(b.failed for b in table.rows) == failed, "every failed batch listed")
        target = next(b for b in table.rows if b.failed)
        await pilot.press("slash", *f"err #{target.id}", "enter")       # batches with failures, this id
        await pilot.pause()
        shown = [b for b in table.rows if b.failed]
        assert target in shown and sum(b.failed for b in shown) < failed
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ReplayScreen), "the replay dialog with its count")
        assert app.screen.failed == sum(b.failed for b in shown) < failed     # the dry-run count
        app.screen.query_one("#replay-start", Checkbox).value = False
        await pilot.press("ctrl+s")
        await settle(pilot)
        child = next(r for r in await engine.store.list_runs() if r.parent_id == run_id)
        assert (await engine.store.counts(child.id)).total == sum(b.failed for b in shown)
        assert "err" in child.spec["replay_of"]["chosen_by"]
        [(action, detail, origin)] = await audited(pilot, engine, run_id, 1)
        assert (action, origin) == ("replay", "console") and f"run {child.id}: " in detail and "err" in detail


async def test_the_browser_marks_a_completed_run_with_failed_items_apart_from_a_clean_one(engine, tmp_path):
    failing = await engine.create_run("synthetic", {"items": 300, "permanent_fail_rate": 0.05, "seed": 4})
    await (await engine.start(failing)).wait()
    clean = await engine.create_run("synthetic", {"items": 100, "seed": 2})
    await (await engine.start(clean)).wait()
    failed = (await engine.store.counts(failing)).failed
    assert failed > 0
    app = BatchdeckApp(engine, export_dir=tmp_path)          # browsing: the newest (clean) run is followed
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        browser = app.screen.query_one("#runs", DataTable)
        await until(pilot, lambda: browser.row_count == 2, "both runs listed")
        assert str(browser.get_row(str(failing))[2]) == f"◐ completed, {failed} failed"
        assert str(browser.get_row(str(clean))[2]) == "✔ completed"
