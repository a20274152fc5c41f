"""The main screen: header, five panes, key bar, and every command's action.

Layout: at 120×40 and up all five panes share a 2-column grid (batch queue
and the run browser on the left; gauges, breakers and charts on the right).
Below 110 columns or 34 rows the screen gets the ``-narrow``/``-short``
breakpoint class and shows one pane at a time under a tab strip; the digit
keys switch panes in both layouts, so the muscle memory is the same.

The bindings come from ``console.commands`` (one table). Actions decide what
is selected and what to do, and post a typed request (``console.messages``)
that the app carries out through its session, off the UI path, reporting a
failure in one place; this screen never touches the store or a run source.
``guard`` refuses run-changing commands in a read-only console and says so.
``f`` opens the results view of the run's job kind, whatever the kind.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from textual.containers import Container
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Static

from console import commands
from console.appref import batchdeck_app
from console.commands import STRATEGIES
from console.messages import (
    ControlRequested,
    ExportRequested,
    FollowRequested,
    ReplayDialogRequested,
    ReplayRequested,
    ReportRequested,
    ResultsViewRequested,
    ResumeRequested,
)
from console.panes.batches import BatchQueuePane, BatchTable
from console.panes.breakers import BreakersPane, EventFeed
from console.panes.charts import ChartsPane
from console.panes.header import RunHeader
from console.panes.history import RunsPane, run_settings
from console.panes.keybar import KeyBar
from console.panes.limits import RateLimitPane
from console.screens.audit import AuditScreen
from console.screens.batch_items import BatchItemsScreen
from console.screens.dialogs import ConfirmScreen, ExportScreen
from console.screens.help import HelpScreen
from console.screens.replay import ReplayScreen
from console.session import ReplayRequest
from engine.models import RunSnapshot, RunState
from engine.sizing import stored_concurrency_ceiling
from engine.source import EngineEvent

if TYPE_CHECKING:
    from console.app import BatchdeckApp

# Commands that steer the watched run: meaningless once it has finished (and pacing needs a process).
STEERING = {"pause_resume", "concurrency_up", "concurrency_down", "strategy", "cancel"}
PACING = {"concurrency_up", "concurrency_down", "strategy"}
PANE_TITLES = {1: "batch queue", 2: "rate limits", 3: "breakers & events", 4: "metrics", 5: "runs & replays"}
TAB_NAMES = {1: "queue", 2: "limits", 3: "breakers", 4: "charts", 5: "runs"}


class MainScreen(Screen[None]):
    BINDINGS = commands.bindings()
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]

    def __init__(self) -> None:
        super().__init__(id="main")
        self.active = 1

    @property
    def batchdeck_app(self) -> BatchdeckApp:
        return batchdeck_app(self)

    def compose(self):
        clock = self.batchdeck_app.clock
        yield RunHeader(id="header")
        yield Static("", id="tabs")
        with _Panes(id="panes"):
            yield BatchQueuePane(clock, id="pane-1", classes="pane")
            yield RateLimitPane(clock, id="pane-2", classes="pane")
            yield BreakersPane(clock, id="pane-3", classes="pane")
            yield RunsPane(clock, id="pane-5", classes="pane")
            yield ChartsPane(id="pane-4", classes="pane")
        yield KeyBar(id="keys")

    def on_mount(self) -> None:
        for n, title in PANE_TITLES.items():
            self.pane(n).border_title = f"{n} {title}"
        self.show_pane(1, focus=True)
        self.header.show(None, mode=self.batchdeck_app.mode, readonly=self.batchdeck_app.readonly)

    # -- parts -----------------------------------------------------------------
    def pane(self, n: int):
        return self.query_one(f"#pane-{n}")

    @property
    def header(self) -> RunHeader:
        return self.query_one(RunHeader)

    @property
    def batches(self) -> BatchQueuePane:
        return self.query_one(BatchQueuePane)

    @property
    def runs(self) -> RunsPane:
        return self.query_one(RunsPane)

    def _focus_target(self, n: int):
        if n == 1:
            return self.query_one(BatchTable)
        if n == 5:
            return self.query_one("#runs", DataTable)
        return self.pane(n)

    def show_pane(self, n: int, focus: bool = True) -> None:
        self.active = n
        for i in PANE_TITLES:
            self.pane(i).set_class(i == n, "-active")
        self._draw_tabs()
        if focus:
            self._focus_target(n).focus()

    def _draw_tabs(self) -> None:
        tabs = " ".join(
            (f"[reverse b] {n} {t} [/]" if n == self.active else f"[$foreground-muted] {n} {t} [/]")
            for n, t in TAB_NAMES.items())
        self.query_one("#tabs", Static).update(Content.from_markup(tabs))

    def on_descendant_focus(self, event) -> None:
        for n in PANE_TITLES:
            pane = self.pane(n)
            if event.widget is pane or pane in event.widget.ancestors:
                if n != self.active:
                    self.active = n
                    for i in PANE_TITLES:
                        self.pane(i).set_class(i == n, "-active")
                    self._draw_tabs()
                return

    # -- data in (from the app's refresh tick) ---------------------------------------
    def apply(self, snapshot: RunSnapshot | None, events: list[EngineEvent], note: str = "") -> None:
        self.header.show(snapshot, mode=self.batchdeck_app.mode, readonly=self.batchdeck_app.readonly, note=note)
        if snapshot is not None:
            self.batches.apply(snapshot)
            self.runs.follow_snapshot(snapshot)
        self.query_one(RateLimitPane).apply(snapshot)
        self.query_one(BreakersPane).apply(snapshot, events)
        self.query_one(ChartsPane).apply(snapshot)

    def reset_run(self, run_id: int | None) -> None:
        """A different run is attached: forget the old one's batches."""
        self.batches.reset(run_id)

    # -- guards ------------------------------------------------------------------------
    def guard(self, command_id: str) -> bool:
        """Refuse a run-changing command in a read-only console, and say so."""
        command = commands.BY_ID[command_id]
        if command.changes_run and self.batchdeck_app.readonly:
            self.notify(f"read-only console: '{command.title}' would change the run, so it is disabled",
                        severity="warning", title="read-only")
            return False
        snap = self.batchdeck_app.snapshot
        if command_id in STEERING and snap is not None and self.batchdeck_app.watched_run_id is not None:
            state = snap.run.state
            if state.finished or (command_id in PACING and state not in (RunState.RUNNING, RunState.PAUSED)):
                self.notify(f"run #{snap.run.id} is {state.value}: '{command.title}' has nothing to act on",
                            severity="warning")
                return False
        return True

    def _attached(self) -> bool:
        if self.batchdeck_app.watched_run_id is None:
            self.notify("no run attached: pick one in pane 5 and press enter", severity="warning")
            return False
        return True

    def _need_engine(self) -> bool:
        if not self.batchdeck_app.session.has_engine:
            self.notify("this needs the database (start the console with an engine)", severity="warning")
            return False
        return True

    def _browser_focused(self) -> bool:
        return self.active == 5 and self.focused is not None and self.runs in self.focused.ancestors_with_self

    # -- the run -------------------------------------------------------------------------
    def action_pause_resume(self) -> None:
        if not self.guard("pause_resume") or not self._attached():
            return
        snap = self.batchdeck_app.snapshot
        state = snap.run.state if snap else None
        if state == RunState.RUNNING:
            self.post_message(ControlRequested("pause"))
            self.notify("pausing: in-flight items finish, then a checkpoint is written")
        elif state == RunState.PAUSED:
            self.post_message(ControlRequested("resume"))
            self.notify("resuming")
        elif state == RunState.INTERRUPTED and snap is not None:
            self.action_resume_run(snap.run.id)
        else:
            self.notify(f"the run is {state.value if state else 'not loaded yet'}: nothing to pause or resume",
                        severity="warning")

    def action_concurrency(self, delta: int) -> None:
        if not self.guard("concurrency_up" if delta > 0 else "concurrency_down"):
            return
        if not self._attached() or self.batchdeck_app.snapshot is None:
            return
        current = self.batchdeck_app.pending_concurrency or self.batchdeck_app.snapshot.concurrency
        # The engine clamps to the run's max_concurrent_requests; say so rather than pretend.
        ceiling = stored_concurrency_ceiling(self.batchdeck_app.snapshot.run.config)
        target = max(1, min(ceiling, current + delta))
        if target == current:
            self.notify(f"concurrency is already {current} (allowed 1..{ceiling}: "
                        "batch.concurrency.max_concurrent_requests)", severity="warning")
            return
        self.batchdeck_app.pending_concurrency = target
        self.post_message(ControlRequested("concurrency", target))
        self.notify(f"concurrency → {target}")

    def action_cycle_strategy(self) -> None:
        snap = self.batchdeck_app.snapshot
        current = snap.strategy if snap else ""
        following = STRATEGIES[(STRATEGIES.index(current) + 1) % len(STRATEGIES)] \
            if current in STRATEGIES else STRATEGIES[0]
        self.action_set_strategy(following)

    def action_set_strategy(self, name: str) -> None:
        if not self.guard("strategy") or not self._attached():
            return
        self.post_message(ControlRequested("strategy", name))
        self.notify(f"strategy → {name}")

    def action_cancel(self) -> None:
        if not self.guard("cancel") or not self._attached():
            return
        run_id = self.batchdeck_app.watched_run_id

        def answered(yes: bool | None) -> None:
            if yes:
                self.post_message(ControlRequested("cancel"))
                self.notify(f"cancelling run #{run_id}")
        self.app.push_screen(ConfirmScreen(f"Cancel run #{run_id}?",
                                           "In-flight items finish; the run cannot be resumed afterwards.",
                                           yes="Cancel the run", no="Keep running"), answered)

    def action_resume_run(self, run_id: int | None = None) -> None:
        if not self.guard("resume_run") or not self._need_engine():
            return
        if run_id is None:
            run = self.runs.selected_run if self._browser_focused() else None
            if run is None and self.batchdeck_app.snapshot is not None:
                run = self.batchdeck_app.snapshot.run
            if run is None:
                self.notify("select a run in pane 5 first", severity="warning")
                return
            if not run.state.resumable:
                self.notify(f"run #{run.id} is {run.state.value}: only paused, interrupted, pending or "
                            "failed runs resume", severity="warning")
                return
            run_id = run.id
        self.post_message(ResumeRequested(run_id))

    def action_replay(self) -> None:
        if not self.guard("replay") or not self._need_engine():
            return
        if not self._browser_focused() and self.batches.filtered:
            self._replay_filtered()
            return
        run_id, batch_id, failed = self._replay_target()
        if run_id is None:
            return
        self.open_replay(run_id, batch_id, failed)

    def _replay_filtered(self) -> None:
        """``R`` with a batch filter: the failed items of every batch the filter shows, counted first."""
        batches = [b for b in self.batches.table.rows if b.failed > 0]
        if not batches:
            self.notify("the filter shows no batch with failed items", severity="warning")
            return
        run_id, terms = batches[0].run_id, " ".join(self.batches._terms)
        self.post_message(ReplayDialogRequested(run_id, [b.id for b in batches],
                                                chosen_by=f"batch filter '{terms}' ({len(batches)} batches)"))

    def open_replay(self, run_id: int, batch_id: int | None, failed: int | None, *,
                    item_ids: tuple[int, ...] = (), chosen_by: str = "") -> None:
        """The replay dialog (how many, and the config to replay with) for a batch, a run or chosen items."""
        config = self._run_config(run_id)
        snap = self.batchdeck_app.snapshot
        strategy = snap.strategy if snap and snap.run.id == run_id and snap.strategy else \
            str(config.get("default_strategy", "conservative"))
        screen = ReplayScreen(
            run_id, batch_id, failed,
            concurrency=max(1, stored_concurrency_ceiling(self._stored_config(run_id)) // 2),
            strategy="conservative" if strategy == "aggressive" else strategy,
            retry_attempts=int(config.get("retry_attempts", 3)), item_ids=item_ids, chosen_by=chosen_by,
        )

        def chosen(request: ReplayRequest | None) -> None:
            if request is not None:
                self.post_message(ReplayRequested(request))
        self.app.push_screen(screen, chosen)

    def _replay_target(self) -> tuple[int | None, int | None, int | None]:
        """What ``R`` replays: the selected batch, a selected replay artifact, or a run's failures."""
        if self._browser_focused():
            record = self.runs.selected_record
            run = self.runs.selected_run
            if record and record.get("type") == "artifact" and record.get("kind") == "replay" and run:
                return run.id, record.get("batch_id"), None
            if run is not None:
                return run.id, None, None
            self.notify("select a run in pane 5 first", severity="warning")
            return None, None, None
        batch = self.batches.selected
        if batch is None or self.batchdeck_app.snapshot is None:
            self.notify("select a batch in pane 1 first", severity="warning")
            return None, None, None
        if batch.failed <= 0:
            self.notify(f"batch #{batch.id} has no failed items to replay", severity="warning")
            return None, None, None
        return batch.run_id, batch.id, batch.failed

    def _run_config(self, run_id: int) -> dict:
        """A run's replayable settings (whichever layout the store kept)."""
        return run_settings(self._stored_config(run_id))

    def _stored_config(self, run_id: int) -> dict:
        """A run's config as stored (empty when the run is not known here)."""
        run = self.runs.runs.get(run_id)
        if run is None and self.batchdeck_app.snapshot is not None and self.batchdeck_app.snapshot.run.id == run_id:
            run = self.batchdeck_app.snapshot.run
        return run.config if run else {}

    def action_export(self) -> None:
        self.post_message(ExportRequested(*self.export_rows()))

    def export_rows(self) -> tuple[str, list[dict]]:
        """The focused pane's rows as plain dicts (what ``e`` exports): as filtered, in the order shown."""
        snap = self.batchdeck_app.snapshot
        run = f"run-{snap.run.id}-" if snap else ""
        if self.active == 1:
            return f"{run}batches", [asdict(b) for b in self.batches.table.rows]
        if self.active == 2:
            return f"{run}rate-limits", [asdict(g) for g in snap.rate_limits] if snap else []
        if self.active == 3:
            feed = self.query_one(EventFeed)
            return f"{run}events", [{"at": e.at, "kind": e.kind, "run_id": e.run_id, "message": e.message}
                                    for e in feed.events]
        if self.active == 4:
            return f"{run}metrics", [asdict(m) for m in snap.series] if snap else []
        return "runs", [{"id": r.id, "kind": r.kind, "state": r.state.value, "parent_id": r.parent_id,
                         "created_at": r.created_at, "started_at": r.started_at, "finished_at": r.finished_at,
                         "message": r.message} for r in self.runs.runs.values()]

    def action_report(self) -> None:
        if not self._need_engine():
            return
        run = self.runs.selected_run if self._browser_focused() else None
        run_id = run.id if run else (self.batchdeck_app.snapshot.run.id if self.batchdeck_app.snapshot else None)
        if run_id is None:
            self.notify("no run to export: select one in pane 5", severity="warning")
            return
        default = self.batchdeck_app.export_dir / f"batchdeck-run-{run_id}-report.md"

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.post_message(ReportRequested(run_id, path))
        self.app.push_screen(ExportScreen(f"Export the report of run #{run_id}", default), chosen)

    # -- looking around ------------------------------------------------------------------
    def action_open_selected(self) -> None:
        if self._browser_focused():
            run = self.runs.selected_run
            if run is not None:
                self.post_message(FollowRequested(run.id))
            return
        if self.active == 1:
            batch = self.batches.selected
            if batch is None:
                self.notify("no batch selected", severity="warning")
                return
            self.app.push_screen(BatchItemsScreen(batch.run_id, batch))

    def action_filter(self) -> None:
        self.show_pane(1, focus=False)
        self.batches.open_filter()

    def _target_run(self):
        """The run a run-level view opens on: the browser's selection when it has focus,
        else the watched run; None (with a notice) when there is neither."""
        run = self.runs.selected_run if self._browser_focused() else None
        if run is None and self.batchdeck_app.snapshot is not None:
            run = self.batchdeck_app.snapshot.run
        if run is None:
            self.notify("no run selected", severity="warning")
        return run

    def action_results(self) -> None:
        """The results view of the run's job kind (findings of a scan...), whatever the kind."""
        run = self._target_run()
        if run is not None:
            self.post_message(ResultsViewRequested(run))

    def action_audit(self) -> None:
        run = self._target_run()
        if run is None:
            return
        self.app.push_screen(AuditScreen(run.id))

    def action_zoom(self) -> None:
        if self.maximized is not None:
            self.minimize()
        else:
            self.maximize(self.pane(self.active), container=False)
            self._focus_target(self.active).focus()

    def action_show_pane(self, n: int) -> None:
        if self.maximized is not None:
            self.minimize()
        self.show_pane(n)

    def action_cycle_theme(self) -> None:
        self.batchdeck_app.cycle_theme()

    def action_set_theme(self, name: str) -> None:
        self.app.theme = name
        self.notify(f"theme: {name}")

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.batchdeck_app.readonly))

    def action_back(self) -> None:
        if self.batches.filtering or (self.active == 1 and self.batches.filtered):
            self.batches.close_filter(clear=True)
        elif self.maximized is not None:
            self.minimize()

    def action_quit(self) -> None:
        self.batchdeck_app.request_quit()


class _Panes(Container):
    """The pane container; CSS switches it between the grid and one pane at a time."""
