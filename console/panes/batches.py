"""Pane 1: the batch queue (active batches first, then the most recent).

Why a Line-API ``ScrollView`` and not a ``DataTable``: a run of 100,000 items
has thousands of batches and a DataTable builds a row object per row up front
(seconds at that size). Here the pane keeps plain ``BatchView`` records in a
dict (bounded to ``MAX_ROWS``), re-sorts only when a batch appears or changes
state, and renders only the lines on screen, so one refresh costs the same with
50 batches or 10,000. Older batches of a run are paged in from the store by a
worker (keyset, newest first) when the run is attached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import BindingType
from textual.containers import Vertical
from textual.events import Click
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input, Static

from console.panes import fmt
from console.panes.messages import BatchHistoryLoaded
from console.panes.rowtable import LIST_BINDINGS
from engine.models import BatchState, BatchView, RunSnapshot

MAX_ROWS = 10_000
HISTORY_PAGE = 500
# size = done + fail + retry (items that failed a try and moved on to a later batch) + those still in flight
COLUMNS = f"{'batch':>7} {'size':>4} {'state':<7} {'done':>5} {'fail':>4} {'retry':>5} {'p95':>6} {'age':>6}"

_STATE_CLASS = {
    BatchState.RUNNING: "batch-table--running",
    BatchState.DONE: "batch-table--done",
    BatchState.PARTIAL: "batch-table--partial",
    BatchState.FAILED: "batch-table--failed",
}


def batch_matches(batch: BatchView, terms: list[str]) -> bool:
    """Every term must match: a state prefix, ``#id``/digits in the id, or ``err``."""
    for term in terms:
        if term in ("err", "errors", "failures"):
            if batch.failed <= 0:
                return False
        elif term.lstrip("#").isdigit():
            if term.lstrip("#") not in str(batch.id):
                return False
        elif not batch.state.value.startswith(term):
            return False
    return True


def _sort_key(batch: BatchView) -> tuple[bool, int]:
    return (batch.state != BatchState.RUNNING, -batch.id)


class BatchTable(ScrollView, can_focus=True):
    """Virtual list of batches; renders only visible lines."""

    COMPONENT_CLASSES = {
        "batch-table--cursor", "batch-table--running", "batch-table--done",
        "batch-table--partial", "batch-table--failed", "batch-table--muted",
    }
    DEFAULT_CSS = """
    BatchTable { height: 1fr; background: $surface; scrollbar-size-vertical: 1; }
    BatchTable > .batch-table--cursor { background: $primary 25%; text-style: bold; }
    BatchTable:focus > .batch-table--cursor { background: $primary 40%; }
    BatchTable > .batch-table--running { color: $primary; }
    BatchTable > .batch-table--done { color: $success; }
    BatchTable > .batch-table--partial { color: $warning; }
    BatchTable > .batch-table--failed { color: $error; }
    BatchTable > .batch-table--muted { color: $foreground-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = LIST_BINDINGS

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)

    def __init__(self, clock: Callable[[], float], **kw) -> None:
        super().__init__(**kw)
        self.clock = clock
        self.rows: list[BatchView] = []
        self.index_of: dict[int, int] = {}

    # -- data ----------------------------------------------------------------
    def set_rows(self, rows: list[BatchView], keep_id: int | None) -> None:
        self.rows = rows
        self.index_of = {row.id: i for i, row in enumerate(rows)}
        self._set_virtual_height(len(rows))
        index = 0
        if keep_id is not None:
            for i, row in enumerate(rows):
                if row.id == keep_id:
                    index = i
                    break
        self.set_reactive(BatchTable.cursor, min(index, max(0, len(rows) - 1)))
        # The selected batch moved (batches appear above it, it finished and left the running
        # block): keep it on screen, so what is highlighted is what enter opens.
        self._scroll_to_cursor(self.cursor)
        self.refresh()

    def _set_virtual_height(self, height: int) -> None:
        """Grow or shrink the scroll range without a screen-wide layout pass.

        ``virtual_size`` is a layout reactive: every new batch would re-lay the
        whole screen (~10 ms at 120×40). A layout is needed only when the
        scrollbar appears or goes; otherwise the scroll range is updated in place.
        """
        size = Size(len(COLUMNS), height)
        visible = max(1, self.scrollable_content_region.height)
        update = getattr(self, "_scroll_update", None)   # Textual internals; fall back if they move
        if update is None or (self.virtual_size.height > visible) != (height > visible) or not self.size:
            self.virtual_size = size
            return
        self.set_reactive(ScrollView.virtual_size, size)
        update(size)

    @property
    def selected(self) -> BatchView | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    # -- navigation ------------------------------------------------------------
    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self.rows) - 1)) if self.rows else 0

    def watch_cursor(self, value: int) -> None:
        self._scroll_to_cursor(value)
        self.refresh()

    def _scroll_to_cursor(self, value: int) -> None:
        top = int(self.scroll_offset.y)
        height = max(1, self.scrollable_content_region.height)
        if value < top:
            self.scroll_to(y=value, animate=False, immediate=True)
        elif value >= top + height:
            self.scroll_to(y=value - height + 1, animate=False, immediate=True)

    def action_move(self, delta: int) -> None:
        self.cursor += delta

    def action_page(self, direction: int) -> None:
        self.cursor += direction * max(1, self.scrollable_content_region.height - 1)

    def action_jump(self, where: int) -> None:
        self.cursor = 0 if where == 0 else len(self.rows) - 1

    async def _on_click(self, event: Click) -> None:   # overrides Widget._on_click: async, as that one is
        self.cursor = int(self.scroll_offset.y) + event.y

    # -- rendering ---------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        index = int(self.scroll_offset.y) + y
        if index >= len(self.rows):
            return Strip.blank(width, base)
        row = self.rows[index]
        style = base
        if index == self.cursor:
            style = base + self.get_component_rich_style("batch-table--cursor")
        strip = Strip(self._segments(row, style), len(COLUMNS))
        strip = strip.extend_cell_length(width + int(self.scroll_offset.x), style)
        return strip.crop(int(self.scroll_offset.x), int(self.scroll_offset.x) + width)

    def _segments(self, row: BatchView, style: Style) -> list[Segment]:
        now = self.clock()
        state_style = style + self.get_component_rich_style(
            _STATE_CLASS.get(row.state, "batch-table--muted"), partial=True)
        fail_style = style + self.get_component_rich_style(
            "batch-table--failed" if row.failed else "batch-table--muted", partial=True)
        age = now - row.started_at
        return [
            Segment(f"{'#' + str(row.id):>7} {row.size:>4} ", style),
            Segment(f"{row.state.value:<7}", state_style),
            Segment(f" {row.done:>5} ", style),
            Segment(f"{row.failed:>4}", fail_style),
            Segment(f" {row.retried:>5} {fmt.millis(row.p95_ms):>6} {fmt.duration(age):>6}", style),
        ]


class BatchQueuePane(Vertical):
    """Batch list + filter + status; merges live snapshots with paged history."""

    ALLOW_MAXIMIZE = True

    DEFAULT_CSS = """
    BatchQueuePane #batch-filter { display: none; height: 1; border: none; padding: 0 1; }
    BatchQueuePane.-filtering #batch-filter { display: block; }
    BatchQueuePane .colheads { height: 1; color: $foreground-muted; text-style: bold; }
    BatchQueuePane #batch-status { height: 1; color: $foreground-muted; }
    """

    def __init__(self, clock: Callable[[], float], **kw) -> None:
        super().__init__(**kw)
        self.clock = clock
        self.run_id: int | None = None
        self._by_id: dict[int, BatchView] = {}
        self._terms: list[str] = []
        self._dirty_order = False
        self._status = ""

    def compose(self):
        yield Input(placeholder="filter: state (run/done/part/fail), #id, err", id="batch-filter")
        yield Static(COLUMNS, classes="colheads", markup=False)
        yield BatchTable(self.clock, id="batch-table")
        yield Static("", id="batch-status", markup=False)

    @property
    def table(self) -> BatchTable:
        return self.query_one(BatchTable)

    @property
    def selected(self) -> BatchView | None:
        return self.table.selected

    @property
    def total_rows(self) -> int:
        return len(self._by_id)

    # -- data in ---------------------------------------------------------------
    def reset(self, run_id: int | None) -> None:
        self.run_id = run_id
        self._by_id.clear()
        self._resort()

    def merge(self, batches: Iterable[BatchView], *, fresher: bool = True) -> None:
        """Fold batches in; ``fresher`` rows (from a snapshot) replace stored ones."""
        by_id = self._by_id
        for b in batches:
            old = by_id.get(b.id)
            if old is None:
                by_id[b.id] = b
                self._dirty_order = True
            elif fresher:
                if old.state != b.state:
                    self._dirty_order = True
                by_id[b.id] = b
        if len(by_id) > MAX_ROWS:
            # Drop the oldest finished batches; running ones always stay visible.
            for batch_id in sorted(k for k, v in by_id.items() if v.state != BatchState.RUNNING)[
                    : len(by_id) - MAX_ROWS]:
                del by_id[batch_id]
            self._dirty_order = True

    def apply(self, snapshot: RunSnapshot) -> None:
        if snapshot.run.id != self.run_id:
            self.reset(snapshot.run.id)
        self.merge(snapshot.recent_batches)
        if self._dirty_order:
            self._resort()
        else:
            # Same order: swap in the fresh records of the batches on the list.
            rows, index_of = self.table.rows, self.table.index_of
            for b in snapshot.recent_batches:
                i = index_of.get(b.id)
                if i is not None:
                    rows[i] = b
            self.table.refresh()
        self._update_status()

    def on_batch_history_loaded(self, message: BatchHistoryLoaded) -> None:
        message.stop()
        if message.run_id != self.run_id:
            return
        self.merge(message.batches, fresher=False)
        self._resort()
        self._update_status()

    def _resort(self) -> None:
        self._dirty_order = False
        rows = sorted(self._by_id.values(), key=_sort_key)
        if self._terms:
            rows = [b for b in rows if batch_matches(b, self._terms)]
        selected = self.table.selected
        self.table.set_rows(rows, selected.id if selected else None)
        self._update_status()

    def _update_status(self) -> None:
        shown, total = len(self.table.rows), len(self._by_id)
        running = sum(1 for b in self.table.rows[:200] if b.state == BatchState.RUNNING)
        text = f"{shown:,} of {total:,} batches" if self._terms else f"{total:,} batches"
        if running:
            text += f" · {running} running"
        if self._terms:
            text += f" · filter: {' '.join(self._terms)} (esc clears)"
        else:
            text += " · enter: items · / filter"
        if text != self._status:           # fixed height: no layout pass
            self._status = text
            self.query_one("#batch-status", Static).update(text, layout=False)

    # -- filter ---------------------------------------------------------------
    def open_filter(self) -> None:
        self.add_class("-filtering")
        self.query_one("#batch-filter", Input).focus()

    def close_filter(self, clear: bool) -> bool:
        """Hide the filter; ``clear`` drops it. Returns whether there was anything to back out of."""
        box = self.query_one("#batch-filter", Input)
        had = self.has_class("-filtering") or bool(self._terms)
        self.remove_class("-filtering")
        if clear and box.value:
            box.value = ""
            self._set_terms("")
        elif clear and self._terms:
            self._set_terms("")
        self.table.focus()
        return had

    @property
    def filtering(self) -> bool:
        """The filter box is open."""
        return self.has_class("-filtering")

    @property
    def filtered(self) -> bool:
        """A filter is applied (box open or not)."""
        return bool(self._terms)

    def _set_terms(self, text: str) -> None:
        self._terms = [t for t in text.lower().split() if t]
        self._resort()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._set_terms(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.remove_class("-filtering")
        self.table.focus()
