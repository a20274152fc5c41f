"""A job kind and its console view defined only under tests/ (``tally``: counts words).

The test that uses them registers both through entry points it writes into a
throwaway ``*.dist-info`` (``batchdeck.kinds``: ``tally = tally_kind:KIND``,
``batchdeck.views``: ``tally = tally_kind:view``), so the console finds the view
exactly as it finds ioc-scan's: nothing in ``console/`` or ``engine/`` names it.
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Static

from console import commands
from console.messages import ExportRequested
from console.panes.keybar import KeyBar
from console.panes.rowtable import Column, RowTable
from engine.kinds import JobKind, Migration

TABLE_SQL = ("CREATE TABLE IF NOT EXISTS tally_words (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, "
             "word TEXT NOT NULL, n INTEGER NOT NULL)")


async def words(store: Any, run_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The kind's named query: its own table, its own SQL, plain rows."""
    rows = await store.fetchall("SELECT word, n FROM tally_words WHERE run_id=? ORDER BY id LIMIT ?",
                                (run_id, limit))
    return [{"word": word, "n": n} for word, n in rows]


class TallyProcessor:
    """Never run by the view test; a kind must name a processor factory."""


KIND = JobKind("tally", processor=TallyProcessor, description="counts words (a test kind)",
               migrations=(Migration(1, TABLE_SQL),), queries={"words": words})


class TallyScreen(Screen[None]):
    COMMAND_SCOPE = "results"
    BINDINGS = commands.bindings(COMMAND_SCOPE)

    def __init__(self, session: Any, run_id: int) -> None:
        super().__init__()
        self.session, self.run_id = session, run_id
        self.rows: list[dict[str, Any]] = []

    def compose(self):
        yield Static(f"Tallies of run #{self.run_id}", id="tally-title", markup=False)
        yield RowTable([Column("word", "word", priority=0), Column("n", "count", priority=1, right=True)],
                       id="tally")
        yield KeyBar(self.COMMAND_SCOPE)

    def on_mount(self) -> None:
        self.app.run_task(self._load(), name=f"load the tallies of run #{self.run_id}")

    async def _load(self) -> None:
        self.rows = await self.session.kind_query(self.run_id, "words")
        self.query_one(RowTable).set_lines(list(self.rows))

    def export_rows(self) -> tuple[str, list[dict[str, Any]]]:
        return f"run-{self.run_id}-tallies", list(self.rows)

    def action_export(self) -> None:
        self.post_message(ExportRequested(*self.export_rows()))

    def action_back(self) -> None:
        self.app.pop_screen()


def view(session: Any, run: Any) -> TallyScreen:
    """The ``batchdeck.views`` entry point of the tally kind."""
    return TallyScreen(session, run.id)
