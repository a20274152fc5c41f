"""The small things an operator tripped over (issue 8, point 11), each as the operator would notice it."""

from __future__ import annotations

import json
from dataclasses import replace

from console_fakes import NOW, FixedStore, ScriptedSource, fixed_app, make_batches, make_snapshot, settle
from textual.widgets import DataTable, Input

from console.panes.batches import BatchTable
from console.panes.history import RunsPane
from console.screens.batch_items import BatchItemsScreen
from console.screens.dialogs import ExportScreen
from engine.models import BatchState, BatchView, RunState


async def tick(pilot) -> None:
    await pilot.app.refresh_snapshot()
    await pilot.pause()


async def test_run_changing_keys_on_a_completed_run_do_nothing_and_say_why():
    source = ScriptedSource(replace(make_snapshot(), run=replace(make_snapshot().run, state=RunState.COMPLETED)))
    app = fixed_app(source=source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for key in ("plus", "minus", "s", "c", "space"):
            await pilot.press(key)
            await settle(pilot)
        assert source.calls == []
        messages = [n.message for n in app._notifications]
        assert len(messages) == 5 and all("completed" in m for m in messages)


async def test_pane_5_relative_times_move_on_with_the_clock():
    now = [NOW]
    app = fixed_app()
    app.clock = lambda: now[0]
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        pane = app.screen.query_one(RunsPane)
        runs = pane.query_one("#runs", DataTable)
        assert str(runs.get_row("7")[4]) == "6m40s ago"
        assert any(t.name == "pane 5 ages" for t in pane._timers)      # ticking on its own
        now[0] += 60
        pane.tick_ages()
        assert str(runs.get_row("7")[4]) == "7m40s ago"
        assert str(pane.query_one("#records", DataTable).get_row("checkpoint:31")[2]) == "1m10s ago"


async def test_the_selected_batch_stays_on_screen_and_enter_opens_it_when_batches_arrive():
    source, store = ScriptedSource(), FixedStore()
    app = fixed_app(source=source, store=store)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(BatchTable)
        height = table.scrollable_content_region.height
        table.cursor = height - 1                      # the last visible row
        chosen = table.selected
        newest = max(b.id for b in table.rows)
        arriving = [BatchView(newest + n, 7, 20, BatchState.RUNNING, 0, 0, 0, None, NOW) for n in range(1, 6)]
        source.current = replace(source.current, recent_batches=arriving + source.current.recent_batches)
        await tick(pilot)
        assert table.selected.id == chosen.id
        top = int(table.scroll_offset.y)
        assert top <= table.cursor < top + height       # still visible: what is highlighted...
        await pilot.press("enter")
        await settle(pilot)
        assert store.calls[-1] == ("batch_items", chosen.id)   # ...is what enter opens


async def test_items_show_how_often_they_ran_and_batch_rows_add_up():
    store = FixedStore()
    app = fixed_app(store=store)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(BatchTable)
        for i, b in enumerate(table.rows[:40]):
            cells = table._segments(b, table.rich_style)
            numbers = "".join(seg.text for seg in cells).split()
            size, done, fail, retry = int(numbers[1]), int(numbers[3]), int(numbers[4]), int(numbers[5])
            in_flight = size - done - fail - retry if b.state is BatchState.RUNNING else 0
            assert size == done + fail + retry + in_flight, f"row {i}: {numbers}"
        table.cursor = next(i for i, b in enumerate(table.rows) if b.failed)
        await pilot.press("enter")
        await settle(pilot)
        items = app.screen.query_one(DataTable)
        tries = {str(items.get_row_at(i)[2]): int(str(items.get_row_at(i)[3])) for i in range(items.row_count)}
        assert tries == {"done": 1, "failed": 4}       # a first-try success ran once; 3 retries = 4 runs


async def test_pane_5_and_the_header_label_configured_and_live_concurrency():
    app = fixed_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("5")
        await settle(pilot)
        assert "configured: concurrency 20" in str(app.screen.query_one("#run-detail").render())
        assert "concurrency 12 now" in str(app.screen.query_one("#header").render())


async def test_e_exports_the_filtered_batch_queue_and_the_events(tmp_path):
    app = fixed_app(export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"part", "enter")
        await pilot.pause()
        shown = [b.id for b in app.screen.query_one(BatchTable).rows]
        for pane, name in (("1", "batches.json"), ("3", "events.json")):
            await pilot.press(pane, "e")
            await pilot.pause()
            assert isinstance(app.screen, ExportScreen)
            app.screen.query_one(Input).value = str(tmp_path / name)
            await pilot.press("enter")
            await settle(pilot)
        batches = json.loads((tmp_path / "batches.json").read_text())
        assert [b["id"] for b in batches] == shown and {b["state"] for b in batches} == {"partial"}
        events = json.loads((tmp_path / "events.json").read_text())
        assert [e["kind"] for e in events][-1] == "batch_ended" and len(events) == 6


async def test_items_view_filter_narrows_the_rows_and_export_writes_them(tmp_path):
    store = FixedStore()
    store.batches = {7: make_batches()}
    app = fixed_app(store=store, export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(BatchTable)
        table.cursor = next(i for i, b in enumerate(table.rows) if b.failed)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, BatchItemsScreen)
        await pilot.press("slash", *"failed 502", "enter")
        await pilot.pause()
        assert app.screen.query_one(DataTable).row_count == 3
        await pilot.press("e")
        await pilot.pause()
        app.screen.query_one(Input).value = str(tmp_path / "items.csv")
        await pilot.press("enter")
        await settle(pilot)
        lines = (tmp_path / "items.csv").read_text().splitlines()
        assert len(lines) == 4 and "tries" in lines[0] and all(",failed," in line for line in lines[1:])
