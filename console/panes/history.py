"""Pane 5: runs → checkpoints and replay artifacts, with details.

Everything here comes from the store through workers (``App.run_task``), in
pages: runs newest first by keyset (``before_id``), the next page fetched when
the cursor reaches the last row. The pane never holds more than it shows plus
a page, so a database with years of runs opens as fast as a new one. The
actions on a selected run (resume, replay, export, follow) live on the main
screen, which asks this pane what is selected.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

from textual.containers import Vertical
from textual.content import Content
from textual.markup import escape
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnDoesNotExist, RowDoesNotExist

from console.panes import fmt
from console.panes.header import STATE_ICON, state_markup
from console.panes.messages import RunDetailsLoaded, RunsLoaded
from engine.models import Counts, RunInfo, RunSnapshot, RunState

RUNS_PAGE = 50
RECORDS_SHOWN = 50      # checkpoints and artifacts listed per run


def age(now: float, at: float | None) -> str:
    return "—" if at is None else fmt.duration(now - at) + " ago"


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return fmt.clip(text, width)


# Where the replayable settings live in a stored config: the nested file layout
# (AppConfig.to_dict) first, then a flat dict of attribute names.
SETTING_PATHS = {
    "max_concurrent_requests": ("batch", "concurrency", "max_concurrent_requests"),
    "default_strategy": ("batch", "strategy", "default"),
    "retry_attempts": ("batch", "performance", "retry_attempts"),
    "default_batch_size": ("batch", "batch_sizes", "default"),
}


def run_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The settings an operator changes on replay, from a run's stored config."""
    out: dict[str, Any] = {}
    for attr, path in SETTING_PATHS.items():
        node: Any = config
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            node = config.get(attr)
        if node is not None:
            out[attr] = node
    return out


def config_summary(config: dict[str, Any]) -> str:
    settings = run_settings(config)
    labels = (("max_concurrent_requests", "concurrency"), ("default_strategy", "strategy"),
              ("retry_attempts", "retries"), ("default_batch_size", "batch"))
    bits = [f"{label} {settings[key]}" for key, label in labels if key in settings]
    return " · ".join(bits) if bits else "defaults"


def record_detail(record: dict[str, Any], now: float) -> str:
    """A checkpoint's counts, or an artifact's summary and the shape of its data."""
    lines = []
    if record["type"] == "checkpoint":
        counts = record.get("counts") or {}
        lines.append(f"[b]checkpoint #{record['id']}[/] {age(now, record.get('created_at'))} · "
                     f"{escape(str(record.get('reason') or ''))}")
        lines.append("  " + " · ".join(f"{k} {fmt.count(v) if isinstance(v, int) else v}"
                                        for k, v in counts.items()))
        return "\n".join(lines)
    batch = f" · batch #{record['batch_id']}" if record.get("batch_id") else ""
    lines.append(f"[b]{record['kind']} #{record['id']}[/]{batch} {age(now, record.get('created_at'))}")
    if record.get("summary"):
        lines.append("  " + escape(record["summary"]))
    data = record.get("data") or {}
    for key, value in list(data.items())[:6]:
        if isinstance(value, list):
            shown = f"{len(value)} entries"
        elif isinstance(value, dict):
            shown = _short(value, 50)
        else:
            shown = str(value)
        lines.append(f"  [$foreground-muted]{escape(str(key))}:[/] {escape(fmt.clip(shown, 70))}")
    return "\n".join(lines)


class RunsPane(Vertical):
    ALLOW_MAXIMIZE = True
    DEFAULT_CSS = """
    RunsPane #runs { height: 1fr; min-height: 4; }
    RunsPane #run-detail { height: auto; max-height: 3; padding: 0 1; background: $panel; }
    RunsPane #records { height: 1fr; min-height: 3; scrollbar-size-horizontal: 0; }
    RunsPane #record-detail { height: auto; max-height: 4; padding: 0 1; color: $foreground; }
    """

    def __init__(self, clock: Callable[[], float], **kw) -> None:
        super().__init__(**kw)
        self.clock = clock
        self.runs: dict[int, RunInfo] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.more = False
        self._details_for: int | None = None
        self._row_state: dict[int, RunState] = {}
        self._detail_shown = ""

    def compose(self):
        runs = DataTable(id="runs", cursor_type="row", zebra_stripes=False)
        runs.add_columns("run", "kind", "state", "from", "created")
        yield runs
        yield Static("select a run", id="run-detail")
        records = DataTable(id="records", cursor_type="row")
        records.add_columns("what", "id", "when", "about")
        yield records
        yield Static("", id="record-detail")

    @property
    def store(self):
        return getattr(self.app, "store", None)

    # -- loading (workers) --------------------------------------------------------
    def load(self, select_id: int | None = None) -> None:
        """Reload the first page of runs (after a replay, a state change...)."""
        if self.store is None:
            self.query_one("#run-detail", Static).update("no database: runs cannot be browsed")
            return
        self.app.run_task(self._fetch_runs(None, False, select_id), name="list runs", group="runs",
                          exclusive=True)

    def load_more(self) -> None:
        if self.store is not None and self.more and self.runs:
            self.app.run_task(self._fetch_runs(min(self.runs), True, None), name="list more runs",
                              group="runs", exclusive=True)

    async def _fetch_runs(self, before_id: int | None, append: bool, select_id: int | None) -> None:
        runs = await self.store.list_runs(limit=RUNS_PAGE, before_id=before_id)
        self.post_message(RunsLoaded(runs, append=append, more=len(runs) >= RUNS_PAGE, select_id=select_id))

    def load_details(self, run_id: int) -> None:
        if self.store is None:
            return
        self._details_for = run_id
        self.app.run_task(self._fetch_details(run_id), name=f"load run #{run_id}", group="run-details",
                          exclusive=True)

    async def _fetch_details(self, run_id: int) -> None:
        store = self.store
        run = await store.get_run(run_id)
        if run is None:
            return
        counts = await store.counts(run_id)
        # Newest first and bounded: a long run has thousands of checkpoints, and the
        # task graph (every planned key) is never shown here, so it is not even read.
        checkpoints = (await store.list_checkpoints(run_id))[-RECORDS_SHOWN:]
        artifacts = []
        for kind in ("replay", "report"):
            artifacts += (await store.list_artifacts(run_id, kind))[-RECORDS_SHOWN:]
        self.post_message(RunDetailsLoaded(run, counts, checkpoints, artifacts))

    # -- results --------------------------------------------------------------------
    def on_runs_loaded(self, message: RunsLoaded) -> None:
        message.stop()
        table = self.query_one("#runs", DataTable)
        keep = message.select_id or (self.selected_run.id if self.selected_run else None)
        if not message.append:
            table.clear()
            self.runs.clear()
            self._row_state.clear()
        now = self.clock()
        for run in message.runs:
            if run.id in self.runs:
                continue
            self.runs[run.id] = run
            self._row_state[run.id] = run.state
            table.add_row(f"#{run.id}", run.kind, f"{STATE_ICON.get(run.state, '')} {run.state.value}",
                          f"#{run.parent_id}" if run.parent_id else "", age(now, run.created_at),
                          key=str(run.id))
        self.more = message.more
        if keep is not None and str(keep) in {k.value for k in table.rows}:
            table.move_cursor(row=table.get_row_index(str(keep)))
        if table.row_count and not message.append:
            selected = self.selected_run
            if selected is not None:
                self.load_details(selected.id)

    def on_run_details_loaded(self, message: RunDetailsLoaded) -> None:
        message.stop()
        if message.run.id != self._details_for:
            return
        run, now = message.run, self.clock()
        self._set_row_state(run)
        self._show_run(run, message.counts)
        records = self.query_one("#records", DataTable)
        records.clear()
        self.records.clear()
        entries = [dict(cp, type="checkpoint") for cp in message.checkpoints]
        entries += [dict(a, type="artifact") for a in message.artifacts]
        entries.sort(key=lambda r: r.get("created_at") or 0, reverse=True)
        for record in entries:
            key = f"{record['type']}:{record['id']}"
            self.records[key] = record
            if record["type"] == "checkpoint":
                what, about = "checkpoint", str(record.get("reason") or "")
            else:
                what = record.get("kind", "artifact")
                batch = f"batch #{record['batch_id']} " if record.get("batch_id") else ""
                about = batch + str(record.get("summary") or "")
            records.add_row(what, f"#{record['id']}", age(now, record.get("created_at")),
                            fmt.clip(about, 40), key=key)
        self._show_record()

    def _show_run(self, run: RunInfo, c: Counts | None) -> None:
        lines = [f"[b]#{run.id}[/] {escape(run.kind)} {state_markup(run.state)}"
                 + (f" · replay of #{run.parent_id}" if run.parent_id else "")
                 + f" · {escape(config_summary(run.config))}"]
        if c is not None:
            lines.append(f"done {fmt.count(c.done)} · [$error]failed {fmt.count(c.failed)}[/] · "
                         f"skipped {fmt.count(c.skipped)} · left {fmt.count(c.pending + c.in_flight)}"
                         f" of {fmt.count(c.total)}")
        if run.message:
            lines.append(f"[$warning]{escape(fmt.clip(run.message, 90))}[/]")
        markup = "\n".join(lines)
        if markup != self._detail_shown:
            self._detail_shown = markup
            self.query_one("#run-detail", Static).update(Content.from_markup(markup))

    def _set_row_state(self, run: RunInfo) -> None:
        """Show a run's current state in its row (the list may be older than the run)."""
        self.runs[run.id] = run
        if self._row_state.get(run.id) == run.state:
            return
        table = self.query_one("#runs", DataTable)
        # The row may have gone with a reload in flight; the reload then shows the state.
        with contextlib.suppress(RowDoesNotExist, ColumnDoesNotExist):
            table.update_cell(str(run.id), table.ordered_columns[2].key,
                              f"{STATE_ICON.get(run.state, '')} {run.state.value}", update_width=True)
            self._row_state[run.id] = run.state

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.data_table.id == "runs":
            run = self.selected_run
            if run is not None and run.id != self._details_for:
                self.load_details(run.id)
            if event.cursor_row >= event.data_table.row_count - 1:
                self.load_more()
        else:
            self._show_record()

    async def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a run row follows that run (the main screen decides how)."""
        if event.data_table.id == "runs":
            event.stop()
            await self.screen.run_action("open_selected")

    def _show_record(self) -> None:
        record = self.selected_record
        detail = self.query_one("#record-detail", Static)
        detail.update(Content.from_markup(record_detail(record, self.clock())) if record else "")

    # -- what is selected ------------------------------------------------------------
    @property
    def selected_run(self) -> RunInfo | None:
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return self.runs.get(int(key)) if key is not None else None

    @property
    def selected_record(self) -> dict[str, Any] | None:
        table = self.query_one("#records", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return self.records.get(key) if key is not None else None

    def follow_snapshot(self, snapshot: RunSnapshot) -> None:
        """Keep the watched run's row and, if it is selected, its details current."""
        if snapshot.run.id not in self.runs:
            return
        self._set_row_state(snapshot.run)
        if self._details_for == snapshot.run.id:
            self._show_run(snapshot.run, snapshot.counts)
