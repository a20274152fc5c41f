"""The echo kind's console results view, defined only under tests/ and registered by the test
under ``batchdeck.views`` (``echo = echo_view:view``): the words the run said, as plain text."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Static

from console import commands
from console.panes.keybar import KeyBar
from console.panes.rowtable import Column, RowTable


class EchoScreen(Screen[None]):
    COMMAND_SCOPE = "results"
    BINDINGS = commands.bindings(COMMAND_SCOPE)

    def __init__(self, session: Any, run_id: int) -> None:
        super().__init__()
        self.session, self.run_id = session, run_id

    def compose(self) -> ComposeResult:
        yield Static(f"What echo run #{self.run_id} said", markup=False)
        yield RowTable([Column("key", "item", priority=0), Column("word", "word", priority=1)], id="echo")
        yield KeyBar(self.COMMAND_SCOPE)

    def on_mount(self) -> None:
        self.app.run_task(self._load(), name=f"load what echo run #{self.run_id} said")

    async def _load(self) -> None:
        self.query_one(RowTable).set_lines(await self.session.kind_query(self.run_id, "said_rows"))

    def action_back(self) -> None:
        self.app.pop_screen()


def view(session: Any, run: Any) -> EchoScreen:
    return EchoScreen(session, run.id)
