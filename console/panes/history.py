"""Pane 5: runs → checkpoints and replay artifacts, with details.

Everything here comes from the console session through workers (``App.run_task``), in
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
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.containers import Vertical
from textual.content import Content
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnDoesNotExist, RowDoesNotExist

from console.appref import batchdeck_app
from console.panes import fmt
from console.panes.header import state_content, state_label
from console.panes.messages import RunDetailsLoaded, RunsLoaded
from engine.models import Counts, RunInfo, RunSnapshot, RunState
from engine.safetext import safe_text, visible

if TYPE_CHECKING:
    from console.session import ConsoleSession

RUNS_PAGE = 50
AGE_TICK_S = 1.0        # how often the relative times move on


def state_cell(state: RunState, failed: int | None = None) -> Text:
    text, style = state_label(state, failed)
    return Text(text, style={"$warning": "yellow"}.get(style, ""))


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
    """The run's configured settings, labelled as such (the header shows the live concurrency)."""
    settings = run_settings(config)
    labels = (("max_concurrent_requests", "concurrency"), ("default_strategy", "strategy"),
              ("retry_attempts", "retries"), ("default_batch_size", "batch"))
    bits = [f"{label} {visible(settings[key])}" for key, label in labels if key in settings]
    return "configured: " + (" · ".join(bits) if bits else "defaults")


def record_detail(record: dict[str, Any], now: float) -> Content:
    """A checkpoint's counts, or an artifact's summary and the shape of its data."""
    lines: list[Content] = []
    if record["type"] == "checkpoint":
        counts = record.get("counts") or {}
        lines.append(Content.assemble((f"checkpoint #{record['id']}", "b"),
                                      f" {age(now, record.get('created_at'))} · ",
                                      visible(record.get("reason") or "")))
        lines.append(Content("  " + " · ".join(f"{visible(k)} {fmt.count(v) if isinstance(v, int) else visible(v)}"
                                               for k, v in counts.items())))
        return Content("\n").join(lines)
    batch = f" · batch #{record['batch_id']}" if record.get("batch_id") else ""
    lines.append(Content.assemble((f"{visible(record['kind'])} #{record['id']}", "b"),
                                  f"{batch} {age(now, record.get('created_at'))}"))
    if record.get("summary"):
        lines.append(Content("  " + visible(record["summary"])))
    data = record.get("data") or {}
    for key, value in list(data.items())[:6]:
        if isinstance(value, list):
            shown = f"{len(value)} entries"
        elif isinstance(value, dict):
            shown = _short(value, 50)
        else:
            shown = str(value)
        lines.append(Content.assemble("  ", (f"{visible(key)}:", "$foreground-muted"), " ",
                                      visible(fmt.clip(shown, 70))))
    return Content("\n").join(lines)


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
        self._row_state: dict[int, tuple[RunState, int | None]] = {}
        self._detail_shown: Content | None = None

    def compose(self):
        runs: DataTable[Any] = DataTable(id="runs", cursor_type="row", zebra_stripes=False)
        runs.add_columns("run", "kind", "state", "from", "created")
        yield runs
        yield Static("select a run", id="run-detail")
        records: DataTable[Any] = DataTable(id="records", cursor_type="row")
        records.add_columns("what", "id", "when", "about")
        yield records
        yield Static("", id="record-detail")

    def on_mount(self) -> None:
        self.set_interval(AGE_TICK_S, self.tick_ages, name="pane 5 ages")

    def tick_ages(self) -> None:
        """Relative times ("12s ago") move on with the clock; only changed cells are redrawn."""
        now = self.clock()
        runs = self.query_one("#runs", DataTable)
        with contextlib.suppress(RowDoesNotExist, ColumnDoesNotExist):
            for run_id, run in list(self.runs.items()):
                shown = age(now, run.created_at)
                if str(run_id) in runs.rows and str(runs.get_cell(str(run_id), runs.ordered_columns[4].key)) != shown:
                    runs.update_cell(str(run_id), runs.ordered_columns[4].key, shown)
            records = self.query_one("#records", DataTable)
            for key, record in list(self.records.items()):
                shown = age(now, record.get("created_at"))
                if key in records.rows and str(records.get_cell(key, records.ordered_columns[2].key)) != shown:
                    records.update_cell(key, records.ordered_columns[2].key, shown)
        self._show_record()

    @property
    def session(self) -> ConsoleSession:
        return batchdeck_app(self).session

    # -- loading (workers; the session runs the queries) -----------------------------
    def load(self, select_id: int | None = None) -> None:
        """Reload the first page of runs (after a replay, a state change...)."""
        if not self.session.has_database:
            self.query_one("#run-detail", Static).update("no database: runs cannot be browsed")
            return
        batchdeck_app(self).run_task(self._fetch_runs(None, False, select_id), name="list runs", group="runs",
                                     exclusive=True)

    def load_more(self) -> None:
        if self.session.has_database and self.more and self.runs:
            batchdeck_app(self).run_task(self._fetch_runs(min(self.runs), True, None), name="list more runs",
                                         group="runs", exclusive=True)

    async def _fetch_runs(self, before_id: int | None, append: bool, select_id: int | None) -> None:
        page = await self.session.runs_page(RUNS_PAGE, before_id=before_id)
        self.post_message(RunsLoaded(page.runs, append=append, more=page.more, select_id=select_id,
                                     failed=page.failed))

    def load_details(self, run_id: int) -> None:
        if not self.session.has_database:
            return
        self._details_for = run_id
        batchdeck_app(self).run_task(self._fetch_details(run_id), name=f"load run #{run_id}", group="run-details",
                                     exclusive=True)

    async def _fetch_details(self, run_id: int) -> None:
        details = await self.session.run_details(run_id)
        if details is not None:
            self.post_message(RunDetailsLoaded(details.run, details.counts, details.checkpoints,
                                               details.artifacts))

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
            failed = message.failed.get(run.id) or None
            self._row_state[run.id] = (run.state, failed if run.state is RunState.COMPLETED else None)
            table.add_row(f"#{run.id}", safe_text(run.kind), state_cell(run.state, failed),
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
        self._set_row_state(run, message.counts.failed if message.counts else None)
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
            records.add_row(safe_text(what), f"#{record['id']}", age(now, record.get("created_at")),
                            safe_text(fmt.clip(about, 40)), key=key)
        self._show_record()

    def _show_run(self, run: RunInfo, c: Counts | None) -> None:
        failed = c.failed if c is not None else None
        first: list[str | tuple[str, str] | Content] = [(f"#{run.id}", "b"), " ", visible(run.kind), " ", state_content(run.state, failed)]
        if run.parent_id:
            first.append(f" · replay of #{run.parent_id}")
        first.append(f" · {config_summary(run.config)}")
        lines = [Content.assemble(*first)]
        if c is not None:
            lines.append(Content.assemble(
                f"done {fmt.count(c.done)} · ", (f"failed {fmt.count(c.failed)}", "$error"),
                f" · skipped {fmt.count(c.skipped)} · left {fmt.count(c.pending + c.in_flight)}"
                f" of {fmt.count(c.total)}"))
        if run.message:
            lines.append(Content.styled(visible(fmt.clip(run.message, 90)), "$warning"))
        content = Content("\n").join(lines)
        if content != self._detail_shown:
            self._detail_shown = content
            self.query_one("#run-detail", Static).update(content)

    def _set_row_state(self, run: RunInfo, failed: int | None = None) -> None:
        """Show a run's current state in its row (the list may be older than the run)."""
        self.runs[run.id] = run
        shown = (run.state, (failed or None) if run.state is RunState.COMPLETED else None)
        if self._row_state.get(run.id) == shown:
            return
        table = self.query_one("#runs", DataTable)
        # The row may have gone with a reload in flight; the reload then shows the state.
        with contextlib.suppress(RowDoesNotExist, ColumnDoesNotExist):
            table.update_cell(str(run.id), table.ordered_columns[2].key, state_cell(*shown), update_width=True)
            self._row_state[run.id] = shown

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
        detail.update(record_detail(record, self.clock()) if record else "")

    # -- what is selected ------------------------------------------------------------
    @property
    def selected_run(self) -> RunInfo | None:
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return self.runs.get(int(key)) if key is not None else None

    @property
    def selected_record(self) -> dict[str, Any] | None:
        table = self.query_one("#records", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return self.records.get(key) if key is not None else None

    def follow_snapshot(self, snapshot: RunSnapshot) -> None:
        """Keep the watched run's row and, if it is selected, its details current."""
        if snapshot.run.id not in self.runs:
            return
        self._set_row_state(snapshot.run, snapshot.counts.failed)
        if self._details_for == snapshot.run.id:
            self._show_run(snapshot.run, snapshot.counts)
