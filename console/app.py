"""The batchdeck console: a Textual app over a ``RunSource`` and the engine API.

Why it is built this way:

* Collaborators come in through the constructor (engine, source, store,
  clock, export dir, quit hook), so tests drive the real engine or a
  hand-made snapshot source, and freeze time, without patching anything.
* The engine, the store and the run sources belong to a Textual-free
  :class:`~console.session.ConsoleSession` (``self.session``): every query and
  every command that creates or changes a run goes through it. Screens and panes
  never touch the store or a runner; screens post typed requests
  (``console.messages``) that this app handles, each in one ``on_*`` handler.
* The UI never blocks the engine and the engine never waits on the UI: the app
  reads ``source.snapshot()`` on a timer at ``refresh_hz`` (a tick is skipped
  if the previous one is still running), drains a bounded number of events per
  tick, and sends every command and heavy query through :meth:`run_task`, a
  worker. Workers post typed messages (``console.panes.messages``) with their
  results; a failing worker, a failing snapshot and a refused input all end in
  :meth:`report_error`, the one place errors become notifications.
* Runs this console drives in-process (given as ``source``, or started here
  by resume/replay) are "owned" (the session keeps them): quitting while one
  runs asks first and pauses it (a checkpoint) or calls the ``on_quit`` hook.
  Attached runs belong to another process and are left alone on quit.
* A run's results view comes from its job kind (``batchdeck.views`` entry
  points, :func:`console.views.load_view`): ``f`` opens it for any kind.
"""

from __future__ import annotations

import asyncio
import csv
import gc
import io
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from textual.app import App
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from console.commands import CommandsProvider, validate_keymap
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
from console.panes.batches import HISTORY_PAGE, MAX_ROWS
from console.panes.messages import BatchHistoryLoaded
from console.screens.main import MainScreen
from console.session import ConsoleSession, ReplayRequest, unaudited, write_private
from console.themes import load_all
from console.views import load_view
from engine.errors import InputError
from engine.events import EventKind
from engine.models import RunSnapshot
from engine.safetext import visible
from engine.source import RunSource

_RUNS_CHANGED = frozenset({EventKind.RUN_STATE, EventKind.ARTIFACT, EventKind.CHECKPOINT})  # reload the run list
EVENT_DRAIN = 200          # events taken per tick; the source drops the oldest beyond its bound
CONCURRENCY_PENDING_S = 2.0
RUNS_RELOAD_DEBOUNCE_S = 3.0   # at most one browser reload per this many seconds of events
EXIT_OK, EXIT_FAILED_ITEMS, EXIT_CRASHED, EXIT_INTERRUPTED = 0, 1, 3, 130
FREEZE_AFTER_S = 2.0       # see on_mount


class BatchdeckApp(App[int]):
    CSS_PATH = "console.tcss"
    TITLE = "batchdeck"
    COMMANDS = App.COMMANDS | {CommandsProvider}

    def __init__(
        self,
        engine: Any = None,
        *,
        source: RunSource | None = None,
        run_id: int | None = None,
        store: Any = None,
        readonly: bool = False,
        theme: str = "dark",
        keymap: dict[str, str] | None = None,
        refresh_hz: float = 4.0,
        clock: Callable[[], float] = time.time,
        export_dir: str | Path | None = None,
        on_quit: Callable[[], Awaitable[None]] | None = None,
        owns_source: bool = True,
        session: ConsoleSession | None = None,
    ) -> None:
        super().__init__()
        # ``session`` replaces engine and store (a test gives one with its own job kinds).
        self.session = session if session is not None else ConsoleSession(engine, store=store, readonly=readonly)
        self.clock = clock
        self.refresh_hz = refresh_hz
        self.export_dir = Path(export_dir) if export_dir else Path.cwd()
        self.on_quit = on_quit
        self.readonly_flag = readonly
        self.keymap = validate_keymap(keymap)
        themes = load_all(extra=theme)
        for t in themes:
            self.register_theme(t)
        self.theme_cycle = [t.name for t in themes]
        # A theme given by path was appended last under its own name.
        self.theme = theme if theme in self.theme_cycle else themes[-1].name
        self.set_keymap(self.keymap)

        self.snapshot: RunSnapshot | None = None
        self.main: MainScreen | None = None
        self._initial = (source, run_id, owns_source)
        self._refreshing = False
        self._snapshot_error: str | None = None
        self._pending_concurrency: tuple[int, float] | None = None
        self._runs_reload_timer: Timer | None = None
        self._paused_on_quit = False

    # -- properties the screens read ------------------------------------------------
    @property
    def readonly(self) -> bool:
        return self.readonly_flag or bool(getattr(self.source, "readonly", False))

    @property
    def source(self) -> RunSource | None:
        """The run being watched (the session keeps it; commands through it are audited)."""
        return self.session.source

    @property
    def watched_run_id(self) -> int | None:
        """The run whose snapshot the panes show (None while browsing)."""
        return None if self.source is None else self.source.run_id

    @property
    def mode(self) -> str:
        if self.source is None:
            return "browsing"
        return "in-process" if self.session.is_owned(self.source.run_id) else "attached"

    @property
    def pending_concurrency(self) -> int | None:
        """A concurrency just asked for and not yet visible in a snapshot (so `+ +` adds two)."""
        if self._pending_concurrency is None:
            return None
        target, at = self._pending_concurrency
        return target if time.monotonic() - at < CONCURRENCY_PENDING_S else None

    @pending_concurrency.setter
    def pending_concurrency(self, value: int | None) -> None:
        self._pending_concurrency = None if value is None else (value, time.monotonic())

    # -- start-up -----------------------------------------------------------------------
    async def on_mount(self) -> None:
        self.main = MainScreen()
        await self.push_screen(self.main)
        self.main.runs.load()
        source, run_id, owns = self._initial
        if source is not None:
            self.set_source(source, owned=owns)
        elif run_id is not None:
            self.run_task(self.follow(run_id), name=f"attach to run #{run_id}")
        elif self.session.has_engine:
            self.run_task(self._follow_latest(), name="find the latest run")
        await self.refresh_snapshot()
        if self.refresh_hz > 0:
            self.set_interval(1.0 / self.refresh_hz, self.refresh_snapshot, name="snapshot")
        # What exists once the screen has been drawn (Textual's widgets, styles
        # and caches, plotext, the engine's setup) lives as long as the app.
        # Moving it out of the cyclic collector's reach keeps full collections
        # short: without this a gen-2 pass took 50-70 ms mid-run, a stall the
        # engine sharing this loop would feel. Once, so nothing short-lived is frozen.
        self.set_timer(FREEZE_AFTER_S, gc.freeze)

    async def _follow_latest(self) -> None:
        """With no run named, follow the newest running run, else the newest run."""
        run_id = await self.session.latest_run_id()
        if run_id is not None:
            await self.follow(run_id)

    # -- the run being watched ------------------------------------------------------------
    def set_source(self, source: RunSource, *, owned: bool = False) -> None:
        """Watch ``source``; the commands sent through it are recorded in the audit log (origin console)."""
        source = unaudited(source)
        previous = self.session.watch(source, owned=owned)
        if previous is not None:
            self.run_task(self.session.close_source(previous), name="close the previous run source")
        self.snapshot = None
        self.pending_concurrency = None
        if self.main is not None:
            self.main.reset_run(source.run_id)
            self.main.query_one("#keys").refresh()     # read-only may come with the source
        if self.session.has_database:
            self.run_task(self._load_batch_history(source.run_id), name=f"load batches of run #{source.run_id}",
                          group="batch-history", exclusive=True)
        self.call_later(self.refresh_snapshot)

    async def follow(self, run_id: int) -> None:
        """Watch a run: the in-process source if this console drives it, else attach via SQLite."""
        source, owned = await self.session.source_for(run_id)
        self.set_source(source, owned=owned)

    async def _load_batch_history(self, run_id: int) -> None:
        async for page in self.session.batch_history(run_id, page=HISTORY_PAGE, max_rows=MAX_ROWS):
            if self.main is not None:
                self.main.batches.post_message(BatchHistoryLoaded(run_id, page))

    async def refresh_snapshot(self) -> None:
        """One tick: read the snapshot, drain events, update the panes."""
        main = self._live_main()
        if self._refreshing or main is None:
            return
        source = self.source
        if source is None:
            main.apply(None, [])
            return
        self._refreshing = True
        try:
            snapshot = await source.snapshot()
            events = source.drain_events(EVENT_DRAIN)
        except Exception as exc:   # a locked DB, a source gone away: shown, and the next tick retries
            self._snapshot_failed(exc)
            return
        finally:
            self._refreshing = False
        main = self._live_main()
        if source is not self.source or main is None:
            return
        self._snapshot_error = None
        previous = self.snapshot
        self.snapshot = snapshot
        self.session.note_state(snapshot.run.id, snapshot.run.state)
        pending = self.pending_concurrency
        if pending is not None and snapshot.concurrency == pending:
            self.pending_concurrency = None
        main.apply(snapshot, events)
        state_changed = previous is not None and previous.run.state != snapshot.run.state
        if state_changed or any(e.kind in _RUNS_CHANGED for e in events):
            self._reload_runs_soon()

    def _live_main(self) -> MainScreen | None:
        """The main screen; None while the app shuts down (timers may still fire as widgets go)."""
        main = self.main
        alive = (main is not None and main.is_attached and not main._closing and not self._closing
                 and not self._exit)
        return main if alive else None

    def _snapshot_failed(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {exc}"
        if message != self._snapshot_error:
            self._snapshot_error = message
            self.report_error("reading the run's snapshot", exc)
        main = self._live_main()
        if main is not None:
            main.apply(self.snapshot, [], note="snapshot failed; retrying")

    def _reload_runs_soon(self) -> None:
        if self._runs_reload_timer is None and self.main is not None:
            def reload() -> None:
                self._runs_reload_timer = None
                main = self._live_main()
                if main is not None:
                    main.runs.load()
            self._runs_reload_timer = self.set_timer(RUNS_RELOAD_DEBOUNCE_S, reload)

    # -- operations (each in a worker; failures land in report_error) ---------------------------
    def run_task(self, work: Coroutine[Any, Any, Any] | Awaitable[Any], *, name: str, group: str = "ops",
                 exclusive: bool = False) -> Worker:
        async def wrapped():
            return await work
        return self.run_worker(wrapped(), name=name, group=group, exclusive=exclusive, exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.report_error(event.worker.name, event.worker.error)

    def notify(self, message: str, *, title: str = "", severity: Any = "information", timeout: float | None = None,
               markup: bool = False) -> None:
        """Every notification is plain text with controls made visible.

        They quote run kinds, theme names, file paths and error texts; widgets'
        ``notify`` passes ``markup=True`` by default, so it is ignored here.
        """
        super().notify(visible(message), title=visible(title), severity=severity, timeout=timeout, markup=False)

    def report_error(self, what: str, error: BaseException) -> None:
        """The one place a failure becomes something the operator sees."""
        # Error texts quote the API and the database: shown as plain text, controls visible.
        if isinstance(error, InputError):
            self.notify(visible(error), severity="warning", title=visible(what), timeout=8, markup=False)
            return
        detail = str(error) or type(error).__name__
        self.log.error(f"{what} failed: {error!r}")
        self.notify(visible(f"{what} failed: {detail}"), severity="error", title="error", timeout=10,
                    markup=False)

    async def resume_run(self, run_id: int) -> None:
        """Resume (or start, if never started) a run in this process and follow it."""
        source = await self.session.start_or_resume(run_id)
        self.set_source(source, owned=True)
        self.notify(f"run #{run_id} is running in this console")
        if self.main is not None:
            self.main.runs.load(select_id=run_id)

    async def replay(self, request: ReplayRequest) -> int:
        result = await self.session.replay(request)
        self.notify(f"replay run #{result.child} created from {result.what} of run #{request.run_id}")
        if self.main is not None:
            self.main.runs.load(select_id=result.child)
        if result.source is not None:
            self.set_source(result.source, owned=True)
        return result.child

    async def export_report(self, run_id: int, path: Path) -> Path:
        await self.session.write_report(run_id, path)
        self.notify(f"report of run #{run_id} written to {path}")
        return path

    def export_view(self, view: Any) -> None:
        """``e`` anywhere: ask the view for its rows (plain dicts, as filtered) and write them."""
        rows_of = getattr(view, "export_rows", None)
        if rows_of is None:
            self.notify("this view has no rows to export", severity="warning")
            return
        name, rows = rows_of()
        self.ask_export(name, rows)

    def ask_export(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Ask where to write ``rows``, then write them (CSV or JSON by the file's suffix)."""
        if not rows:
            self.notify(f"nothing to export: {name} shows no rows", severity="warning")
            return
        from console.screens.dialogs import ExportScreen

        def chosen(path: Path | None) -> None:
            if path is not None:
                self.run_task(self.export_rows(path, rows), name=f"export {name}")
        self.push_screen(ExportScreen(f"Export {len(rows):,} rows: {name}", self.export_dir / f"batchdeck-{name}.csv",
                                      "File to write (.csv for CSV, .json for JSON); enter writes it."), chosen)

    async def export_rows(self, path: Path, rows: list[dict[str, Any]]) -> Path:
        text = rows_text(rows, "json" if path.suffix.lower() == ".json" else "csv")
        await asyncio.to_thread(write_private, path, text)
        self.notify(f"{len(rows):,} rows written to {visible(path)}", markup=False)
        return path

    # -- what screens ask for (typed messages; each acts through the session in a worker) -------------
    def on_control_requested(self, message: ControlRequested) -> None:
        source = self.source
        if source is None:
            self.notify("no run attached: pick one in pane 5 and press enter", severity="warning")
            return
        calls = {
            "pause": lambda: source.pause(),
            "resume": lambda: source.resume(),
            "cancel": lambda: source.cancel(),
            "concurrency": lambda: source.set_concurrency(int(message.arg)),
            "strategy": lambda: source.set_strategy(str(message.arg)),
        }
        if message.command not in calls:
            self.report_error("steering the run", InputError(f"unknown command {message.command!r}"))
            return
        what = f"{message.command} {message.arg}" if message.arg is not None else message.command
        self.run_task(calls[message.command](), name=what)

    def on_follow_requested(self, message: FollowRequested) -> None:
        self.run_task(self.follow(message.run_id), name=f"follow run #{message.run_id}")

    def on_resume_requested(self, message: ResumeRequested) -> None:
        self.run_task(self.resume_run(message.run_id), name=f"resume run #{message.run_id}")

    def on_replay_requested(self, message: ReplayRequested) -> None:
        self.run_task(self.replay(message.request), name=f"replay run #{message.request.run_id}")

    def on_replay_dialog_requested(self, message: ReplayDialogRequested) -> None:
        async def count_then_ask() -> None:
            ids = await self.session.failed_item_ids(message.run_id, message.batch_ids)
            if not ids:
                self.notify("the filtered batches have no failed items left to replay", severity="warning")
                return
            if self.main is not None:
                self.main.open_replay(message.run_id, None, len(ids), item_ids=tuple(ids),
                                      chosen_by=message.chosen_by)
        self.run_task(count_then_ask(), name="count the filtered failed items")

    def on_export_requested(self, message: ExportRequested) -> None:
        self.ask_export(message.name, message.rows)

    def on_report_requested(self, message: ReportRequested) -> None:
        self.run_task(self.export_report(message.run_id, message.path),
                      name=f"export report of run #{message.run_id}")

    def on_results_view_requested(self, message: ResultsViewRequested) -> None:
        """Open the run's results: the view its job kind registered (``batchdeck.views``)."""
        run = message.run
        try:
            factory = load_view(run.kind)
            if factory is None:
                self.notify(f"run #{run.id} is a {run.kind} run: no results view is installed for {run.kind} runs",
                            severity="warning")
                return
            screen = factory(self.session, run)
        except Exception as exc:    # a plugin's view that fails to build: one notice, the console goes on
            self.report_error(f"opening the results of run #{run.id}", exc)
            return
        self.push_screen(screen)

    # -- theme --------------------------------------------------------------------------------
    def cycle_theme(self) -> None:
        names = self.theme_cycle
        index = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(index + 1) % len(names)]
        self.notify(f"theme: {self.theme}", timeout=2)

    # -- quitting -------------------------------------------------------------------------------
    def running_owned(self) -> list[int]:
        return self.session.running_owned()

    def request_quit(self) -> None:
        running = self.running_owned()
        if not running:
            self.exit(self.exit_code())
            return
        from console.screens.dialogs import ConfirmScreen

        names = ", ".join(f"#{r}" for r in running)

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_task(self._pause_and_exit(running), name="pause before quitting")
        self.push_screen(ConfirmScreen(
            "Quit batchdeck?",
            f"Run {names} is still running. It will be paused and checkpointed first; "
            "resume it later with 'batchdeck resume' or 'r' here.",
            yes="Pause and quit", no="Stay"), answered)

    async def _pause_and_exit(self, running: list[int]) -> None:
        in_flight = self.snapshot.counts.in_flight if self.snapshot else 0
        self.notify(f"pausing before quitting: {in_flight} in-flight item(s) finish, then a checkpoint",
                    timeout=30)
        if self.on_quit is not None:
            await self.on_quit()
        else:
            # One audit row for the quit (exit code 130 tells `drive` not to add its own).
            await self.session.pause_owned(running, "quitting the console")
        self._paused_on_quit = True
        self.exit(self.exit_code())

    async def action_quit(self) -> None:
        self.request_quit()

    def action_help_quit(self) -> None:
        """Ctrl+C does in the console what it does on the command line: a run of this
        console is paused (resumable) and the console exits 130, without a question,
        since a reflexive Ctrl+C must stop the run at once. (Textual's default only
        hints at `q`, in markup.)"""
        running = self.running_owned()
        if running:
            self.run_task(self._pause_and_exit(running), name="pause on ctrl+c")
        else:
            self.exit(self.exit_code())

    def exit_code(self) -> int:
        """130 if quitting left a run of ours unfinished, 1 if one ended with failed items, else 0."""
        if self._paused_on_quit:
            return EXIT_INTERRUPTED
        snap = self.snapshot
        if snap is not None and self.session.is_owned(snap.run.id) and snap.run.state.finished and snap.counts.failed:
            return EXIT_FAILED_ITEMS
        return EXIT_OK


def rows_text(rows: list[dict[str, Any]], fmt: str) -> str:
    """Rows as JSON (values as they are) or CSV (control characters made visible)."""
    if fmt == "json":
        return json.dumps(rows, indent=2, default=str) + "\n"
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(k) is None else visible(row.get(k)) for k in columns])
    return out.getvalue()


async def run_console(
    engine: Any = None,
    *,
    run_id: int | None = None,
    source: RunSource | None = None,
    readonly: bool = False,
    theme: str = "dark",
    keymap: dict[str, str] | None = None,
    refresh_hz: float = 4.0,
    on_quit: Callable[[], Awaitable[None]] | None = None,
    export_dir: str | Path | None = None,
    headless: bool = False,
) -> int:
    """Run the console until the user quits; returns the exit code for the CLI.

    In-process (``demo``, ``scan``, ``run`` without ``--headless``): pass the
    started run's live ``source``; quitting while it runs pauses it first
    (checkpoint), or awaits ``on_quit`` if given. Browsing (``batchdeck
    console``): pass just the ``engine`` (and ``run_id`` to attach to one run).
    Bad ``theme``/``keymap`` raise ``InputError`` before the screen changes.
    Returns 0, 1 (an owned run ended with failed items), 3 (the console stopped
    on an error) or 130 (quit paused an unfinished run). ``headless`` draws
    nowhere (tests).
    """
    app = BatchdeckApp(engine, source=source, run_id=run_id, readonly=readonly, theme=theme, keymap=keymap,
                       refresh_hz=refresh_hz, on_quit=on_quit, export_dir=export_dir)   # checks theme, keymap
    if run_id is not None and source is None:
        if await app.session.run(run_id) is None:
            raise InputError(f"--run {run_id}: no such run (batchdeck runs lists them)")
    if not is_terminal():
        raise InputError("console: stdout is not a terminal; use --headless, or 'batchdeck runs' / 'show'")
    result = await app.run_async(headless=headless)
    if isinstance(result, int):
        return result
    if app.return_code:          # the app stopped on an error (Textual printed it): never a clean 0
        return EXIT_CRASHED
    return app.exit_code()


def is_terminal() -> bool:
    """The console draws on stdout and reads keys from stdin: without a terminal it would spin."""
    return sys.stdout.isatty() and sys.stdin.isatty()
