"""Drill-down: one batch's items and their last errors.

Items come from the console session in pages of ``PAGE`` (keyset on item id) through a
worker; the next page is fetched when the cursor reaches the last row, so a
batch of any size opens at once. The selected item's full error shows below
the table.
"""

from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from console import commands
from console.appref import batchdeck_app
from console.messages import ExportRequested
from console.panes import fmt
from console.panes.keybar import KeyBar
from console.panes.messages import BatchItemsLoaded
from engine.models import BatchView
from engine.safetext import safe_text, visible

TRIED_STATES = ("done", "failed", "in_flight")


def tries(row: dict[str, Any]) -> int:
    """How many times the item ran: ``attempts`` counts retries, so a finished item ran once more."""
    attempts = int(row.get("attempts") or 0)
    return attempts + 1 if row.get("state") in TRIED_STATES else attempts


def in_flight_note(b: BatchView) -> str:
    left = b.size - b.done - b.failed - b.retried
    return f" · in flight {left}" if left > 0 else ""

PAGE = 200


def item_matches(row: dict[str, Any], terms: list[str]) -> bool:
    """Every term must appear in the item's key, state, error class or last error."""
    text = " ".join(str(row.get(k) or "") for k in ("key", "state", "error_class", "last_error")).lower()
    return all(term in text for term in terms)


class BatchItemsScreen(Screen[None]):
    """A batch's items (bounded: a batch holds at most ``max_batch_size`` items, paged in)."""

    COMMAND_SCOPE = "items"
    BINDINGS = commands.bindings(COMMAND_SCOPE)
    DEFAULT_CSS = """
    BatchItemsScreen #items-filter { display: none; height: 1; border: none; padding: 0 1; }
    BatchItemsScreen.-filtering #items-filter { display: block; }
    """

    def __init__(self, run_id: int, batch: BatchView) -> None:
        super().__init__()
        # not ``self.batch``: that is Textual's ``Widget.batch()`` (batched updates), which it would hide
        self.run_id, self.batch_view = run_id, batch
        self.rows: dict[int, dict[str, Any]] = {}
        self.more = False
        self.terms: list[str] = []

    def compose(self):
        b = self.batch_view
        yield Static(Content.assemble(
            (f"batch #{b.id}", "b"), f" of run #{self.run_id} · {b.size} items · {b.state.value} · "
            f"done {b.done} · ", (f"failed {b.failed}", "$error"),
            f" · moved on to a retry {b.retried}{in_flight_note(b)} · p95 {fmt.millis(b.p95_ms)}"),
            id="items-title")
        yield Input(placeholder="filter: words in key, state, error class or error (e.g. failed server)",
                    id="items-filter")
        table: DataTable[Any] = DataTable(id="items", cursor_type="row")
        table.add_columns("seq", "key", "state", "tries", "error class", "last error")
        yield table
        yield Static("loading items…", id="item-error")
        yield KeyBar("items")

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self._fetch(0)

    def _fetch(self, after_id: int) -> None:
        app = batchdeck_app(self)
        session = app.session
        if not session.has_database:
            self.query_one("#item-error", Static).update("no database: items cannot be listed")
            return
        app.run_task(self._load(session, after_id), name=f"load items of batch #{self.batch_view.id}",
                     group="batch-items", exclusive=True)

    async def _load(self, session, after_id: int) -> None:
        rows = await session.batch_items(self.run_id, self.batch_view.id, after_id=after_id, limit=PAGE)
        self.post_message(BatchItemsLoaded(self.batch_view.id, rows, more=len(rows) >= PAGE))

    def on_batch_items_loaded(self, message: BatchItemsLoaded) -> None:
        for row in message.rows:
            if row["id"] in self.rows:
                continue
            self.rows[row["id"]] = row
            if item_matches(row, self.terms):
                self._add_row(row)
        self.more = message.more
        if not self.rows:
            self.query_one("#item-error", Static).update("this batch has no items")
        else:
            self._show_error()

    @property
    def shown(self) -> list[dict[str, Any]]:
        return [r for r in self.rows.values() if item_matches(r, self.terms)]

    def _add_row(self, row: dict[str, Any]) -> None:
        table = self.query_one(DataTable)
        table.add_row(row.get("seq"), safe_text(fmt.clip(str(row.get("key")), 40)), safe_text(row.get("state")),
                          tries(row), safe_text(row.get("error_class") or ""),
                          safe_text(fmt.clip(str(row.get("last_error") or ""), 60)), key=str(row["id"]))

    def _refilter(self) -> None:
        self.query_one(DataTable).clear()
        for row in self.shown:
            self._add_row(row)
        self._show_error()

    # -- the keys of this view ------------------------------------------------------------------
    def action_filter(self) -> None:
        self.add_class("-filtering")
        self.query_one("#items-filter", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.terms = [t for t in event.value.lower().split() if t]
        self._refilter()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.remove_class("-filtering")
        self.query_one(DataTable).focus()

    def action_back(self) -> None:
        if self.has_class("-filtering") or self.terms:
            self.remove_class("-filtering")
            self.query_one("#items-filter", Input).value = ""
            self.terms = []
            self._refilter()
            self.query_one(DataTable).focus()
            return
        self.app.pop_screen()

    def export_rows(self) -> tuple[str, list[dict[str, Any]]]:
        rows = [{**r, "tries": tries(r)} for r in self.shown]
        return f"run-{self.run_id}-batch-{self.batch_view.id}-items", rows

    def action_export(self) -> None:
        self.post_message(ExportRequested(*self.export_rows()))

    def action_replay(self) -> None:
        """``R``: the failed items this view shows (the filter applies), counted, as a child run."""
        main = getattr(self.app, "main", None)
        if main is None or not main.guard("replay") or not main._need_engine():
            return
        failed = tuple(r["id"] for r in self.shown if r.get("state") == "failed")
        if not failed:
            self.notify("no failed item is shown here to replay", severity="warning")
            return
        chosen_by = f"batch #{self.batch_view.id}" + (f", filter '{' '.join(self.terms)}'" if self.terms else "")
        main.open_replay(self.run_id, None, len(failed), item_ids=failed, chosen_by=chosen_by)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_error()
        if self.more and event.cursor_row >= event.data_table.row_count - 1:
            self.more = False
            self._fetch(max(self.rows))

    def _show_error(self) -> None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        row = self.rows.get(int(key)) if key is not None else None
        if row is None:
            return
        error = row.get("last_error")
        text = Content.assemble(
            (visible(row.get("key")), "b"), "  ", (visible(row.get("error_class") or ""), "$error"), "\n",
            visible(error, keep_newlines=True) if error else ("no error", "$foreground-muted"))
        self.query_one("#item-error", Static).update(text)
