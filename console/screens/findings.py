"""Findings of an ioc-scan run: which repo, file and line pulls a compromised package.

Paged from the store (keyset on finding id) by a worker, like the batch items.
"""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from console.panes import fmt
from console.panes.messages import FindingsLoaded

PAGE = 200


class FindingsScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "back", id="back")]

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.ids: set[int] = set()
        self.last_id = 0
        self.more = False

    def compose(self):
        yield Static(f"Findings of run #{self.run_id}", id="findings-title")
        table = DataTable(id="findings", cursor_type="row")
        table.add_columns("repo", "file", "line", "package", "version", "ecosystem", "source", "kind")
        yield table
        yield Static("loading findings…", id="findings-status")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self._fetch()

    def _fetch(self) -> None:
        store = getattr(self.app, "store", None)
        if store is None:
            self.query_one("#findings-status", Static).update("no database: findings cannot be listed")
            return
        self.app.run_task(self._load(store, self.last_id), name=f"load findings of run #{self.run_id}",
                          group="findings", exclusive=True)

    async def _load(self, store, after_id: int) -> None:
        rows = await store.findings(self.run_id, after_id=after_id, limit=PAGE)
        self.post_message(FindingsLoaded(self.run_id, rows, more=len(rows) >= PAGE))

    def on_findings_loaded(self, message: FindingsLoaded) -> None:
        table = self.query_one(DataTable)
        for row in message.rows:
            row_id = row.get("id")
            if row_id in self.ids:
                continue
            self.ids.add(row_id)
            self.last_id = max(self.last_id, int(row_id or 0))
            table.add_row(*self._cells(row))
        self.more = message.more
        n = len(self.ids)
        status = f"{n:,} finding{'s' if n != 1 else ''}" + (" · more load as you scroll" if self.more else "")
        self.query_one("#findings-status", Static).update(status if n else "no findings for this run")

    @staticmethod
    def _cells(row: dict[str, Any]) -> list[str]:
        return [fmt.clip(str(row.get("repo", "")), 30), fmt.clip(str(row.get("file_path", "")), 36),
                str(row.get("line_number") or ""), str(row.get("package_name", "")),
                str(row.get("version", "")), str(row.get("ecosystem", "")),
                fmt.clip(str(row.get("ioc_source", "")), 20), str(row.get("kind", ""))]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.more and event.cursor_row >= event.data_table.row_count - 1:
            self.more = False
            self._fetch()
