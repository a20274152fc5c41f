"""Repository-supplied text in the console: shown literally, never interpreted.

A path ``[/oops]crash/package-lock.json`` used to crash the findings view with
MarkupError (and the console exited 0), ``[link=...]`` became a live link and
``ESC]0;pwned BEL`` in a name could retitle the terminal and hide the row. The
hand-made run here puts such text in every place a repository, the API or the
database reaches the screen: findings, item keys and errors, run messages,
breaker reasons, lane pauses, gauge names, events, the strategy.
"""

from __future__ import annotations

import pytest
from console_fakes import (
    ESC_TITLE,
    LINK_NAME,
    MARKUP_PATH,
    HostileStore,
    ScriptedSource,
    fixed_app,
    hostile_events,
    hostile_snapshot,
    settle,
)

from console.app import run_console
from console.panes.rowtable import RowTable
from console.screens.batch_items import BatchItemsScreen
from console.views.ioc_scan import FindingsScreen
from engine.api import Engine
from engine.errors import InputError

SHOWN_TITLE = "␛]0;pwned␇"


def hostile_app():
    return fixed_app(source=ScriptedSource(hostile_snapshot(), hostile_events()), store=HostileStore())


def screen_text(app) -> str:
    """What the terminal would show, as text (the SVG export is drawn from the same segments)."""
    svg = app.export_screenshot()
    return svg.replace("&#160;", " ").replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")


async def test_hostile_text_on_the_main_screen_is_literal_and_has_no_escape():
    app = hostile_app()
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        text = screen_text(app)
        assert "\x1b" not in text and "\x07" not in text
        assert SHOWN_TITLE in text                       # visible, not swallowed
        assert "[/oops]" in text and "[link=https://evil.example]x[/link]" in text   # event, literally
        assert "[/s]adaptive" in text                    # the strategy in the header
        assert "[/m]" + SHOWN_TITLE in text              # the run's message in pane 5


async def test_the_findings_view_shows_markup_paths_literally_instead_of_crashing():
    app = hostile_app()
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, FindingsScreen)
        assert app.return_code is None                   # still running: no MarkupError
        text = screen_text(app)
        assert MARKUP_PATH in text and LINK_NAME in text and "acme/" + SHOWN_TITLE + "api" in text
        assert "␛[2Jclear/yarn.lock" in text and "\x1b" not in text
        assert len(app.screen.query_one(RowTable).lines) == 2


async def test_item_errors_quoting_markup_and_escapes_show_literally():
    app = hostile_app()
    async with app.run_test(size=(200, 50)) as pilot:
        await settle(pilot)
        table = app.screen.query_one("#batch-table")
        table.cursor = next(i for i, b in enumerate(table.rows) if b.failed)
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("ctrl+end")
        await settle(pilot)
        assert isinstance(app.screen, BatchItemsScreen)
        text = screen_text(app)
        assert "[link=https://evil.example]click[/link]" in text and "repo:acme/" + SHOWN_TITLE + "[/x]" in text
        assert "\x1b" not in text


async def test_a_failing_command_quoting_markup_is_reported_as_plain_text():
    app = hostile_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.report_error("[/oops] reading", RuntimeError(f"[link=x]boom[/link] {ESC_TITLE}"))
        await settle(pilot)
        messages = [n.message for n in app._notifications]
        assert any("[link=x]boom[/link] " + SHOWN_TITLE in m for m in messages)
        assert app.return_code is None


async def test_console_without_a_terminal_or_with_no_such_run_is_one_line_not_a_spinning_app(tmp_path):
    engine = await Engine.open(tmp_path / "c.db")
    try:
        with pytest.raises(InputError, match="--run 999: no such run"):
            await run_console(engine, run_id=999)
        with pytest.raises(InputError, match="not a terminal"):        # pytest's stdout is not a TTY
            await run_console(engine)
    finally:
        await engine.close()


async def test_a_console_that_stops_on_an_error_never_exits_0(monkeypatch):
    import console.app

    class Broken(ScriptedSource):
        async def snapshot(self):
            return object()           # no run, no counts: the first screen update raises

    monkeypatch.setattr(console.app, "is_terminal", lambda: True)
    code = await run_console(None, source=Broken(), headless=True)
    assert code == console.app.EXIT_CRASHED != 0


async def test_every_notification_is_plain_text_whoever_sends_it(tmp_path):
    app = hostile_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.screen.notify(f"theme: [/oops]{ESC_TITLE}")           # a theme file's name, a typed path...
        await settle(pilot)
        assert app.return_code is None
        assert f"theme: [/oops]{SHOWN_TITLE}" in [n.message for n in app._notifications]
