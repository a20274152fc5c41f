"""Every key of the command table, driven with the pilot over the hand-made run.

The source records the commands it gets and changes its next snapshot
accordingly, so each test checks what the operator sees change. The same keys
against the real engine (progress stops, concurrency rises, replay creates a
child run, attached mode) are in ``test_engine_keys.py``.
"""

from __future__ import annotations

from console_fakes import FixedStore, ScriptedSource, fixed_app, paste, settle
from textual.command import CommandPalette
from textual.widgets import DataTable, Input

from console.commands import COMMANDS
from console.panes.batches import BatchTable
from console.panes.rowtable import RowTable
from console.screens.batch_items import BatchItemsScreen
from console.screens.dialogs import ConfirmScreen
from console.screens.help import HelpScreen
from console.views.ioc_scan import FindingsScreen
from engine.models import BatchState, RunState


async def tick(pilot) -> None:
    """One refresh of the snapshot, as the timer would do it."""
    await pilot.app.refresh_snapshot()
    await pilot.pause()


def header_text(app) -> str:
    return str(app.screen.query_one("#header").render())


async def test_space_and_p_pause_then_resume():
    source = ScriptedSource()
    app = fixed_app(source=source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        await tick(pilot)
        assert source.calls[-1] == ("pause", None)
        assert "paused" in header_text(app)
        await pilot.press("p")
        await settle(pilot)
        await tick(pilot)
        assert source.calls[-1] == ("resume", None)
        assert "running" in header_text(app)


async def test_plus_and_minus_change_concurrency_and_presses_accumulate():
    source = ScriptedSource()
    app = fixed_app(source=source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("plus", "plus")        # before any new snapshot: 12 → 13 → 14
        await settle(pilot)
        assert [c for c in source.calls if c[0] == "set_concurrency"] == [("set_concurrency", 13),
                                                                          ("set_concurrency", 14)]
        await tick(pilot)
        assert "concurrency 14 now" in header_text(app)
        await pilot.press("minus")
        await settle(pilot)
        await tick(pilot)
        assert source.calls[-1] == ("set_concurrency", 13)
        assert "concurrency 13 now" in header_text(app)


async def test_s_cycles_strategy_and_palette_picks_one_by_name():
    source = ScriptedSource()
    app = fixed_app(source=source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        assert source.calls[-1] == ("set_strategy", "aggressive")    # adaptive → next in the table
        await pilot.press("colon")
        await pilot.pause()
        assert CommandPalette.is_open(app)
        await paste(pilot, "Strategy: conservative")
        await pilot.press("enter")
        await settle(pilot)
        assert source.calls[-1] == ("set_strategy", "conservative")


async def test_palette_runs_the_same_action_as_the_key():
    source = ScriptedSource()
    app = fixed_app(source=source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("colon")
        await pilot.pause()
        await paste(pilot, "Pause the run")
        await pilot.press("enter")
        await settle(pilot)
        assert source.calls == [("pause", None)]


async def test_c_asks_first_and_n_keeps_the_run():
    source = ScriptedSource()
    app = fixed_app(source=source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await settle(pilot)
        assert source.calls == []
        await pilot.press("c")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        await tick(pilot)
        assert source.calls == [("cancel", None)]
        assert "cancelled" in header_text(app)


async def test_slash_filters_the_queue_and_escape_clears_it():
    app = fixed_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(BatchTable)
        total = len(table.rows)
        await pilot.press("slash")
        await pilot.pause()
        assert isinstance(app.focused, Input)
        await pilot.press(*"part")
        await pilot.pause()
        assert table.rows and all(b.state == BatchState.PARTIAL for b in table.rows)
        assert len(table.rows) < total
        await pilot.press("enter")           # keep the filter, back to the list
        await pilot.pause()
        assert app.focused is table
        await pilot.press("escape")
        await pilot.pause()
        assert len(table.rows) == total


async def test_filter_err_keeps_batches_with_failures():
    app = fixed_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"err")
        await pilot.pause()
        rows = app.screen.query_one(BatchTable).rows
        assert rows and all(b.failed > 0 for b in rows)


async def test_question_mark_lists_every_command_and_escape_closes():
    app = fixed_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one(DataTable)
        texts = {str(table.get_row_at(i)[1]) for i in range(table.row_count)}
        assert {c.help for c in COMMANDS} <= texts
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_t_cycles_through_the_theme_files():
    app = fixed_app("dark")
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        seen = [app.theme]
        for _ in range(3):
            await pilot.press("t")
            await pilot.pause()
            seen.append(app.theme)
        assert seen[:4] == ["dark", "light", "high-contrast", "dark"]
        assert app.current_theme.dark is True


async def test_digits_switch_the_visible_pane_at_80x24():
    app = fixed_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for n in (2, 3, 4, 5, 1):
            await pilot.press(str(n))
            await pilot.pause()
            visible = [p.id for p in app.screen.query(".pane") if p.display]
            assert visible == [f"pane-{n}"]


async def test_digits_focus_panes_at_120x40_with_all_visible():
    app = fixed_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert len([p for p in app.screen.query(".pane") if p.display]) == 5
        await pilot.press("5")
        await pilot.pause()
        assert app.focused.id == "runs"
        await pilot.press("2")
        await pilot.pause()
        assert app.focused.id == "pane-2"


async def test_z_zooms_the_focused_pane_and_escape_restores():
    app = fixed_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("4", "z")
        await pilot.pause()
        assert app.screen.maximized is not None and app.screen.maximized.id == "pane-4"
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.maximized is None


async def test_enter_drills_into_a_batch_and_shows_its_errors():
    store = FixedStore()
    app = fixed_app(store=store)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(BatchTable)
        table.cursor = next(i for i, b in enumerate(table.rows) if b.failed)
        chosen = table.selected
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, BatchItemsScreen)
        assert store.calls == [("batch_items", chosen.id)]
        items = app.screen.query_one(DataTable)
        assert items.row_count == 20
        await pilot.press("ctrl+end")
        await pilot.pause()
        assert "502" in str(app.screen.query_one("#item-error").render())
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, BatchItemsScreen)


async def test_f_shows_findings_of_an_ioc_scan_run():
    app = fixed_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, FindingsScreen)
        assert len(app.screen.query_one(RowTable).lines) == 3


async def test_readonly_refuses_every_run_changing_key_and_says_so():
    source = ScriptedSource()
    app = fixed_app(source=source, readonly=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for key in ("space", "p", "plus", "minus", "s", "c", "R", "r"):
            await pilot.press(key)
            await settle(pilot)
            assert not isinstance(app.screen, ConfirmScreen)
        assert source.calls == []
        messages = [n.message for n in app._notifications]
        assert messages and all("read-only" in m for m in messages)
        assert "READ-ONLY" in header_text(app)


async def test_keymap_moves_a_binding_by_id():
    source = ScriptedSource()
    app = fixed_app(source=source, keymap={"pause_resume": "x"})
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        assert source.calls == []
        await pilot.press("x")
        await settle(pilot)
        assert source.calls == [("pause", None)]


async def test_q_asks_while_the_run_goes_on_then_pauses_it_and_exits_130():
    source = ScriptedSource()
    app = fixed_app(source=source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert source.calls == [] and app.is_running
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
    assert source.calls == [("pause", None)]
    assert app.return_value == 130


async def test_q_quits_at_once_when_the_run_is_not_running():
    from console_fakes import make_snapshot

    source = ScriptedSource(make_snapshot(RunState.PAUSED))
    app = fixed_app(source=source)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert source.calls == []
    assert app.return_value == 0


async def test_actions_needing_the_database_say_so_without_one():
    app = fixed_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(BatchTable)
        table.cursor = next(i for i, b in enumerate(table.rows) if b.failed)
        for key in ("R", "E", "r"):
            await pilot.press(key)
            await settle(pilot)
        messages = [n.message for n in app._notifications]
        assert len(messages) == 3 and all("database" in m for m in messages)


async def test_replay_refuses_a_batch_without_failures():
    app = fixed_app()
    app.session.engine = object()     # anything non-None: the refusal happens before the engine is used
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(BatchTable)
        table.cursor = next(i for i, b in enumerate(table.rows) if not b.failed)
        await pilot.press("R")
        await settle(pilot)
        assert "no failed items" in [n.message for n in app._notifications][-1]


async def test_a_failing_command_is_reported_not_raised():
    class Broken(ScriptedSource):
        async def pause(self) -> None:
            raise RuntimeError("database is locked")

    app = fixed_app(source=Broken())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        assert app.is_running
        assert any("database is locked" in n.message for n in app._notifications)
