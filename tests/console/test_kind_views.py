"""A job kind's results view comes from its own package, through ``batchdeck.views``.

The ``tally`` kind and its view live in ``tests/console/tally_kind.py``; each test
registers them through entry points written into a throwaway ``*.dist-info`` on
``sys.path``. The console opens the view with ``f`` on a run of that kind and shows
the kind's rows, read by the kind's own query, as plain text.
"""

from __future__ import annotations

import importlib
import sys

import pytest
from console_fakes import settle

from console.app import BatchdeckApp
from console.panes.rowtable import RowTable
from console.session import ConsoleSession
from console.views import load_view
from engine.api import Engine
from engine.config import load_config
from engine.errors import InputError

ENTRY_POINTS = """\
[batchdeck.kinds]
tally = tally_kind:KIND

[batchdeck.views]
tally = tally_kind:view
broken = tally_kind:no_such_view
"""
HOSTILE_WORDS = [("[bold]x[/]", 3), ("\x1b[2Jclear", 1), ("plain", 2)]


@pytest.fixture
def tally_installed(tmp_path):
    """The tally kind and view installed as a plugin distribution would be (entry points only)."""
    site = tmp_path / "site"
    dist = site / "batchdeck_tally-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: batchdeck-tally\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(str(site))
        importlib.invalidate_caches()


@pytest.fixture
async def engine(tmp_path):
    eng = await Engine.open(tmp_path / "console.db", load_config(None, env={}))
    try:
        yield eng
    finally:
        await eng.close()


async def tally_run(engine) -> int:
    """A run of the tally kind with its rows in the kind's own table (made by the store from
    ``KIND.migrations`` when it opened, since the kind was installed)."""
    run_id = await engine.create_run("tally", {})
    for word, n in HOSTILE_WORDS:
        await engine.store.write("INSERT INTO tally_words (run_id, word, n) VALUES (?, ?, ?)", (run_id, word, n))
    return run_id


async def test_f_opens_the_view_a_test_kind_registered_and_shows_its_rows_as_plain_text(
        tally_installed, engine, tmp_path):
    run_id = await tally_run(engine)
    app = BatchdeckApp(engine, run_id=run_id, refresh_hz=0, export_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert app.snapshot is not None and app.snapshot.run.kind == "tally"
        await pilot.press("f")
        await settle(pilot)
        screen = app.screen
        assert type(screen).__name__ == "TallyScreen" and type(screen).__module__ == "tally_kind"
        table = screen.query_one(RowTable)
        assert [row["word"] for row in table.lines] == [w for w, _ in HOSTILE_WORDS]
        shown = "\n".join(table.render_line(y).text for y in range(1, 4))
        assert "[bold]x[/]" in shown                  # markup shown literally, not applied
        assert "␛[2Jclear" in shown and "\x1b" not in shown   # the escape made visible, never sent
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main


async def test_f_on_a_kind_without_a_view_says_so_and_stays(tally_installed, engine, tmp_path):
    run_id = await engine.store.create_run("synthetic", {"count": 1}, {})
    app = BatchdeckApp(engine, run_id=run_id, refresh_hz=0, export_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        assert app.screen is app.main
        assert "no results view is installed for synthetic runs" in [n.message for n in app._notifications][-1]


def test_load_view_finds_registered_views_and_refuses_a_broken_one_in_one_line(tally_installed):
    factory = load_view("tally")
    assert factory is not None and factory.__module__ == "tally_kind"
    assert load_view("no-such-kind") is None
    with pytest.raises(InputError) as caught:
        load_view("broken")
    assert "view of job kind 'broken' (tally_kind:no_such_view) cannot be loaded" in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_the_session_runs_the_kinds_named_query_and_names_the_ones_it_has(tally_installed, engine):
    run_id = await tally_run(engine)
    session = ConsoleSession(engine)
    assert await session.kind_query(run_id, "words", limit=1) == [{"word": "[bold]x[/]", "n": 3}]
    with pytest.raises(InputError, match="job kind 'tally' has no query 'nope' \\(it has: words\\)"):
        await session.kind_query(run_id, "nope")
    with pytest.raises(InputError, match="run #999: no such run"):
        await session.kind_query(999, "words")


async def test_a_failing_kind_query_is_one_plain_notice_and_the_console_goes_on(tally_installed, engine, tmp_path):
    run_id = await tally_run(engine)
    await engine.store.write("DROP TABLE tally_words")
    app = BatchdeckApp(engine, run_id=run_id, refresh_hz=0, export_dir=tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        assert app.is_running
        errors = [n.message for n in app._notifications if n.severity == "error"]
        assert errors == [f"load the tallies of run #{run_id} failed: no such table: tally_words"]
