"""Drill-down: one batch's items and their last errors.

Items come from the store in pages of ``PAGE`` (keyset on item id) through a
worker; the next page is fetched when the cursor reaches the last row, so a
batch of any size opens at once. The selected item's full error shows below
the table.
"""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.content import Content
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from console.panes import fmt
from console.panes.messages import BatchItemsLoaded
from engine.models import BatchView

PAGE = 200


class BatchItemsScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "back", id="back")]

    def __init__(self, run_id: int, batch: BatchView) -> None:
        super().__init__()
        self.run_id, self.batch = run_id, batch
        self.rows: dict[int, dict[str, Any]] = {}
        self.more = False

    def compose(self):
        b = self.batch
        yield Static(Content.from_markup(
            f"[b]batch #{b.id}[/] of run #{self.run_id} · {b.size} items · {b.state.value} · "
            f"done {b.done} · [$error]failed {b.failed}[/] · retried {b.retried} · "
            f"p95 {fmt.millis(b.p95_ms)}"), id="items-title")
        table = DataTable(id="items", cursor_type="row")
        table.add_columns("seq", "key", "state", "tries", "error class", "last error")
        yield table
        yield Static("loading items…", id="item-error")
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self._fetch(0)

    def _fetch(self, after_id: int) -> None:
        store = getattr(self.app, "store", None)
        if store is None:
            self.query_one("#item-error", Static).update("no database: items cannot be listed")
            return
        self.app.run_task(self._load(store, after_id), name=f"load items of batch #{self.batch.id}",
                          group="batch-items", exclusive=True)

    async def _load(self, store, after_id: int) -> None:
        rows = await store.batch_items(self.run_id, self.batch.id, after_id=after_id, limit=PAGE)
        self.post_message(BatchItemsLoaded(self.batch.id, rows, more=len(rows) >= PAGE))

    def on_batch_items_loaded(self, message: BatchItemsLoaded) -> None:
        table = self.query_one(DataTable)
        for row in message.rows:
            if row["id"] in self.rows:
                continue
            self.rows[row["id"]] = row
            table.add_row(row.get("seq"), fmt.clip(str(row.get("key")), 40), row.get("state"),
                          row.get("attempts"), row.get("error_class") or "",
                          fmt.clip(str(row.get("last_error") or "").replace("\n", " "), 60), key=str(row["id"]))
        self.more = message.more
        if not self.rows:
            self.query_one("#item-error", Static).update("this batch has no items")
        else:
            self._show_error()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_error()
        if self.more and event.cursor_row >= event.data_table.row_count - 1:
            self.more = False
            self._fetch(max(self.rows))

    def _show_error(self) -> None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        row = self.rows.get(int(key)) if key is not None else None
        if row is None:
            return
        error = row.get("last_error")
        text = (f"[b]{escape(str(row.get('key')))}[/]  [$error]{escape(str(row.get('error_class') or ''))}[/]\n"
                + (escape(str(error)) if error else "[$foreground-muted]no error[/]"))
        self.query_one("#item-error", Static).update(Content.from_markup(text))
