"""The audit log of one run: who paused, resumed, cancelled, re-sized or replayed it, when, from where.

Entries come from the ``audit`` table through the console session (the newest
``MAX_ENTRIES``), written by the CLI, signal handlers and this console alike.
They are few and user-driven, so one read when the screen opens is enough.
Every value is drawn as plain text with controls made visible (the Line-API
:class:`RowTable`), since a replay filter or a host name can be anything.
``e`` exports what is shown, ``esc`` goes back.
"""

from __future__ import annotations

import time
from typing import Any

from textual.screen import Screen
from textual.widgets import Static

from console import commands
from console.appref import batchdeck_app
from console.messages import ExportRequested
from console.panes.keybar import KeyBar
from console.panes.rowtable import Column, RowTable

MAX_ENTRIES = 500

COLUMNS = [
    Column("when", "when", priority=0, cut="keep"),
    Column("action", "action", priority=0, cut="keep"),
    Column("arg", "detail", priority=1, min_width=16, max_width=80),
    Column("origin", "from", priority=2, cut="keep"),
    Column("user", "user", priority=3, max_width=20),
    Column("where", "host/pid", priority=4, max_width=40),
]


def audit_row(entry: Any) -> dict[str, Any]:
    """One entry as the plain dict the table draws and ``e`` exports."""
    return {"when": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.at)), "action": entry.action,
            "arg": entry.arg, "origin": entry.origin, "user": entry.user,
            "where": f"{entry.host} pid {entry.pid}", "run_id": entry.run_id}


class AuditScreen(Screen[None]):
    COMMAND_SCOPE = "audit"
    BINDINGS = commands.bindings(COMMAND_SCOPE)
    DEFAULT_CSS = """
    AuditScreen #audit-title { height: 1; background: $panel; padding: 0 1; text-style: bold; }
    AuditScreen #audit-status { height: 1; color: $foreground-muted; padding: 0 1; }
    """

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.rows: list[dict[str, Any]] = []

    def compose(self):
        yield Static(f"Audit log of run #{self.run_id} (newest first)", id="audit-title", markup=False)
        yield RowTable(COLUMNS, id="audit")
        yield Static("loading the audit log…", id="audit-status", markup=False)
        yield KeyBar(self.COMMAND_SCOPE)

    def on_mount(self) -> None:
        self.query_one(RowTable).focus()
        app = batchdeck_app(self)
        session = app.session
        if not session.has_database:
            self.query_one("#audit-status", Static).update("no database: the audit log cannot be read")
            return
        app.run_task(self._load(session), name=f"load the audit log of run #{self.run_id}",
                     group="audit", exclusive=True)

    async def _load(self, session) -> None:
        found = await session.audit_entries(self.run_id, limit=MAX_ENTRIES)
        if not self.is_attached:            # left with esc before the read finished
            return
        self.rows = [audit_row(e) for e in reversed(found)]
        self.query_one(RowTable).set_lines(list(self.rows))
        count = len(self.rows)
        if not count:
            status = "no operator actions recorded for this run"
        elif count >= MAX_ENTRIES:
            status = f"newest {MAX_ENTRIES:,} actions shown: 'batchdeck audit {self.run_id} --limit N' lists more"
        else:
            status = f"{count:,} operator action{'s' if count != 1 else ''}"
        self.query_one("#audit-status", Static).update(status)

    def export_rows(self) -> tuple[str, list[dict[str, Any]]]:
        return f"run-{self.run_id}-audit", list(self.rows)

    def action_export(self) -> None:
        self.post_message(ExportRequested(*self.export_rows()))

    def action_back(self) -> None:
        self.app.pop_screen()
