"""Snapshot tests: what the operator sees, pane by pane, in every theme and size.

The run is the hand-made one in ``console_fakes`` (fixed timestamps, clock
frozen at NOW), so a changed SVG means a changed screen. Update deliberately
with ``pytest tests/console --snapshot-update`` and look at the report.
"""

from __future__ import annotations

import pytest
from console_fakes import fixed_app, settle
from textual.widgets import Input

THEMES = ("dark", "light", "high-contrast")
SIZES = {"120x40": (120, 40), "80x24": (80, 24)}


def ready(*keys: str):
    """run_before: wait for the history workers, then press keys (settling after each).

    Text boxes stop blinking first: a blinking cursor is drawn or not depending on
    when the screenshot is taken (the filter snapshot failed about one run in eight)."""
    async def run(pilot) -> None:
        await settle(pilot)
        for box in pilot.app.screen.query(Input):
            box.cursor_blink = False
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
    return run


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare, theme, size):
    """All five panes at 120×40; the batch queue under the tab strip at 80×24."""
    assert snap_compare(fixed_app(theme), terminal_size=SIZES[size], run_before=ready())


@pytest.mark.parametrize("pane", [2, 3, 4, 5])
def test_each_pane_compact(snap_compare, pane):
    """At 80×24 a digit shows that pane alone (pane 1 is the main screen's default)."""
    assert snap_compare(fixed_app("dark"), terminal_size=(80, 24), run_before=ready(str(pane)))


def test_charts_zoomed(snap_compare):
    """`4` then `z`: the metrics pane full screen, legends shown."""
    assert snap_compare(fixed_app("light"), terminal_size=(120, 40), run_before=ready("4", "z"))


def test_help_screen(snap_compare):
    assert snap_compare(fixed_app("dark"), terminal_size=(120, 40), run_before=ready("question_mark"))


def test_help_screen_readonly_with_keymap(snap_compare):
    """Remapped keys show as remapped; run-changing commands are marked off."""
    app = fixed_app("dark", readonly=True, keymap={"pause_resume": "x", "cancel": "ctrl+k"})
    assert snap_compare(app, terminal_size=(120, 40), run_before=ready("question_mark"))


def test_filter_partial_batches(snap_compare):
    assert snap_compare(fixed_app("dark"), terminal_size=(120, 40),
                        run_before=ready("slash", "p", "a", "r", "t"))


def test_batch_drill_down(snap_compare):
    """Enter on a partial batch: its items and the selected item's last error."""
    async def run(pilot) -> None:
        await settle(pilot)
        table = pilot.app.screen.query_one("#batch-table")
        table.cursor = next(i for i, b in enumerate(table.rows) if b.failed and b.state.value == "partial")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("ctrl+end")
        await settle(pilot)
    assert snap_compare(fixed_app("dark"), terminal_size=(120, 40), run_before=run)


def test_findings_screen(snap_compare):
    assert snap_compare(fixed_app("dark"), terminal_size=(120, 40), run_before=ready("f"))


def test_findings_screen_narrow_grouped_by_package(snap_compare):
    """At 80×24 package and version stay whole; `g` groups by package with counts."""
    assert snap_compare(fixed_app("dark"), terminal_size=(80, 24), run_before=ready("f", "g"))


def test_hostile_names_are_shown_literally(snap_compare):
    """Markup and escape sequences from repositories, drawn as visible text (findings at 120×40)."""
    from console_fakes import HostileStore, ScriptedSource, hostile_events, hostile_snapshot

    app = fixed_app("dark", source=ScriptedSource(hostile_snapshot(), hostile_events()), store=HostileStore())
    assert snap_compare(app, terminal_size=(120, 40), run_before=ready("f"))


def test_cancel_confirmation(snap_compare):
    assert snap_compare(fixed_app("high-contrast"), terminal_size=(80, 24), run_before=ready("c"))
