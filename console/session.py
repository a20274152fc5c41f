"""The console's session: the engine and store, the runs it watches and drives, every query.

Textual-free on purpose (an import-linter contract forbids ``textual`` here): the app,
its screens and panes ask the session for data and hand it the operator's commands;
only the session touches ``Engine``, ``Store`` and run sources. So a pane never learns
how a run is stored, and the session can be driven from a test or a script without a
screen.

What it owns:

* the sources: the run being watched is either a live in-process source (a run this
  console started, resumed or replayed: an *owned* run) or a ``DbRunSource`` attached
  through SQLite (a run of another process). Owned runs are remembered with their last
  seen state, so quitting knows what to pause.
* the queries, each returning typed rows: pages of runs, a run's details, batches,
  batch items, failed items, the audit log, checkpoints, metrics, control requests,
  and a job kind's own named queries (:meth:`kind_query`).
* the commands that create or change runs (start/resume, replay, report, control),
  each recorded in the audit log with origin ``console``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.audit import Action, AuditedSource, AuditEntry, Origin, entries, record
from engine.errors import InputError
from engine.kinds import JobKind, load_kind
from engine.models import BatchView, Counts, MetricSample, RunInfo, RunState
from engine.source import RunSource

if TYPE_CHECKING:
    from engine.store import Store

RECORDS_SHOWN = 50        # checkpoints and artifacts of a run shown in its details


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """What the replay dialog asks for: a child run of ``run_id``'s failed items."""

    run_id: int
    batch_id: int | None
    overrides: dict[str, Any]
    start: bool
    item_ids: tuple[int, ...] = ()     # replay exactly these failed items (what a filter shows)
    chosen_by: str = ""


@dataclass(frozen=True, slots=True)
class ReplayResult:
    child: int            # the new run
    what: str             # "batch #12", "the failed items"... for the notice
    source: RunSource | None = None   # its live source when it was started here


@dataclass(frozen=True, slots=True)
class RunsPage:
    runs: list[RunInfo]
    more: bool                                    # the page was full: there may be older runs
    failed: dict[int, int] = field(default_factory=dict)   # failed items of the completed runs listed


@dataclass(frozen=True, slots=True)
class RunDetails:
    run: RunInfo
    counts: Counts | None
    checkpoints: list[dict[str, Any]]
    artifacts: list[dict[str, Any]]


def unaudited(source: Any) -> Any:
    """The run source under its audit wrapper: ``owned`` keeps these, so a quit's pause is recorded once."""
    return source.source if isinstance(source, AuditedSource) else source


class ConsoleSession:
    """The console's one door to the engine: sources, owned runs and queries.

    ``engine`` may be None (a console over a hand-made source); ``store`` defaults to the
    engine's. ``kinds`` resolves a job kind by name (``engine.kinds.load_kind``; a test
    passes its own)."""

    def __init__(self, engine: Any = None, *, store: Store | None = None, readonly: bool = False,
                 kinds: Callable[[str], JobKind] = load_kind) -> None:
        self.engine = engine
        self.store: Store | None = store if store is not None else getattr(engine, "store", None)
        self.readonly = readonly
        self.kinds = kinds
        self.source: RunSource | None = None       # the run being watched, audited
        self.owned: dict[int, RunSource] = {}
        self.owned_states: dict[int, RunState] = {}
        self.handles: list[Any] = []
        self._kind_of: dict[int, str] = {}

    # -- what this session can do ------------------------------------------------------------
    @property
    def has_database(self) -> bool:
        return self.store is not None

    @property
    def has_engine(self) -> bool:
        return self.engine is not None

    def require_database(self) -> Store:
        """The store the queries read; an InputError when this console has none."""
        if self.store is None:
            raise InputError("no database: start the console with an engine")
        return self.store

    def require_engine(self) -> None:
        if self.engine is None:
            raise InputError("no database: start the console with an engine to attach to runs")

    # -- sources and owned runs -----------------------------------------------------------------
    def audited(self, source: RunSource) -> RunSource:
        """``source`` with its commands recorded in the audit log (origin console)."""
        source = unaudited(source)
        return AuditedSource(source, self.store, Origin.CONSOLE) if self.store is not None else source

    def watch(self, source: RunSource, *, owned: bool = False) -> RunSource | None:
        """Watch ``source`` (``owned``: this console drives its run). Returns the source
        watched before when it is to be closed (:meth:`close_source`), else None."""
        source = unaudited(source)
        previous = self.source
        self.source = self.audited(source)
        if owned:
            self.own(source)
        if previous is None or unaudited(previous) is source:
            return None
        return previous

    def own(self, source: RunSource) -> None:
        self.owned[unaudited(source).run_id] = unaudited(source)

    def is_owned(self, run_id: int) -> bool:
        return run_id in self.owned

    def note_state(self, run_id: int, state: RunState) -> None:
        if run_id in self.owned:
            self.owned_states[run_id] = state

    def running_owned(self) -> list[int]:
        return [run_id for run_id in self.owned
                if self.owned_states.get(run_id, RunState.RUNNING) == RunState.RUNNING]

    async def source_for(self, run_id: int) -> tuple[RunSource, bool]:
        """The source to watch ``run_id`` through, and whether this console drives it."""
        if run_id in self.owned:
            return self.owned[run_id], True
        self.require_engine()
        source = self.engine.attach(run_id, readonly=self.readonly)
        if inspect.isawaitable(source):
            source = await source
        return source, False

    async def close_source(self, source: RunSource) -> None:
        """A source no longer watched (never an owned one: its run goes on)."""
        source = unaudited(source)
        if source.run_id in self.owned:
            return
        close = getattr(source, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result

    async def latest_run_id(self) -> int | None:
        """The newest running run, else the newest run, else None."""
        if self.store is None:
            return None
        runs = await self.store.list_runs(limit=20)
        if not runs:
            return None
        running = [r for r in runs if r.state == RunState.RUNNING]
        return (running or runs)[0].id

    # -- commands that create or drive runs --------------------------------------------------------
    async def start_or_resume(self, run_id: int) -> RunSource:
        """Resume (or start, if never started) a run in this process; it becomes owned."""
        self.require_engine()
        run = await self.run(run_id)
        if run is not None and run.state == RunState.PENDING:
            handle = await self.engine.start(run_id)
        else:
            handle = await self.engine.resume(run_id)
        self.handles.append(handle)
        self.own(handle.source)
        return handle.source

    async def replay(self, request: ReplayRequest) -> ReplayResult:
        """A child run of the failed items asked for (started here when ``request.start``)."""
        self.require_engine()
        if request.item_ids:
            child = await self.engine.replay_items(request.run_id, list(request.item_ids),
                                                   overrides=request.overrides, note=request.chosen_by)
            what = f"{len(request.item_ids):,} filtered failed items"
        else:
            child = await self.engine.replay(request.run_id, batch_id=request.batch_id,
                                             overrides=request.overrides)
            what = f"batch #{request.batch_id}" if request.batch_id else "the failed items"
        await self.record(request.run_id, Action.REPLAY, f"run {child}: {what}"
                          + (f"; chosen by {request.chosen_by}" if request.chosen_by else ""))
        source = None
        if request.start:
            handle = await self.engine.start(child)
            self.handles.append(handle)
            self.own(handle.source)
            source = handle.source
        return ReplayResult(child, what, source)

    async def write_report(self, run_id: int, path: Path) -> Path:
        """The run report as Markdown, or JSON for a ``.json`` path (created 0600)."""
        self.require_engine()
        report = await self.engine.report(run_id)
        if path.suffix.lower() == ".json":
            text = json.dumps(report, indent=2, sort_keys=True, default=str)
        else:
            text = self.engine.report_markdown(report)
        await asyncio.to_thread(write_private, path, text)
        return path

    async def pause_owned(self, run_ids: list[int], reason: str) -> None:
        """Pause runs of this console (each writes a checkpoint), one audit row each."""
        for run_id in run_ids:
            await self.owned[run_id].pause()
            await self.record(run_id, Action.PAUSE, reason)

    async def record(self, run_id: int, action: Action | str, detail: object = None) -> None:
        """One row of the audit log, origin console (nothing without a database)."""
        if self.store is not None:
            await record(self.store, run_id, action, detail, origin=Origin.CONSOLE)

    async def request_control(self, run_id: int, command: str, arg: str | None = None) -> None:
        """A control request for a run of another process (it polls for them)."""
        self.require_engine()
        await self.engine.request(run_id, command, arg)

    # -- queries ------------------------------------------------------------------------------------
    async def run(self, run_id: int) -> RunInfo | None:
        if self.store is None:
            return None
        run = await self.store.get_run(run_id)
        if run is not None:
            self._kind_of[run_id] = run.kind
        return run

    async def runs_page(self, limit: int, before_id: int | None = None) -> RunsPage:
        store = self.require_database()
        runs = await store.list_runs(limit=limit, before_id=before_id)
        for run in runs:
            self._kind_of[run.id] = run.kind
        failed = await self._failed_counts([r.id for r in runs if r.state is RunState.COMPLETED])
        return RunsPage(runs, more=len(runs) >= limit, failed=failed)

    async def _failed_counts(self, run_ids: list[int]) -> dict[int, int]:
        """Failed items per completed run, so a row never shows ✔ for a run that left failures.

        Summed from the batches (a batch records its final failures), a table ~20× smaller
        than the items one, in one query for the page."""
        fetchall = getattr(self.store, "fetchall", None)
        if not run_ids or fetchall is None:
            return {}
        marks = ",".join("?" * len(run_ids))
        rows = await fetchall(f"SELECT run_id, sum(failed) FROM batches WHERE run_id IN ({marks}) "
                              "GROUP BY run_id", run_ids)
        return {run_id: int(n or 0) for run_id, n in rows}

    async def run_details(self, run_id: int) -> RunDetails | None:
        """A run with its counts, newest checkpoints and replay/report artifacts (bounded:
        a long run has thousands of checkpoints; the task graph is never read here)."""
        run = await self.run(run_id)
        if run is None:
            return None
        store = self.require_database()     # there is one: the run was read from it
        counts = await store.counts(run_id)
        checkpoints = (await store.list_checkpoints(run_id))[-RECORDS_SHOWN:]
        artifacts: list[dict[str, Any]] = []
        for kind in ("replay", "report"):
            artifacts += (await store.list_artifacts(run_id, kind))[-RECORDS_SHOWN:]
        return RunDetails(run, counts, checkpoints, artifacts)

    async def batches_page(self, run_id: int, limit: int, before_id: int | None = None) -> list[BatchView]:
        store = self.require_database()
        return await store.list_batches(run_id, limit=limit, before_id=before_id)

    async def batch_history(self, run_id: int, *, page: int, max_rows: int) -> AsyncIterator[list[BatchView]]:
        """A run's batches, newest first, page by page (keyset), up to ``max_rows``."""
        before_id, loaded = None, 0
        while loaded < max_rows:
            rows = await self.batches_page(run_id, limit=page, before_id=before_id)
            if not rows:
                return
            yield rows
            loaded += len(rows)
            if len(rows) < page:
                return
            before_id = min(b.id for b in rows)

    async def batch_items(self, run_id: int, batch_id: int, after_id: int = 0,
                          limit: int = 200) -> list[dict[str, Any]]:
        store = self.require_database()
        return await store.batch_items(run_id, batch_id, after_id=after_id, limit=limit)

    async def failed_item_ids(self, run_id: int, batch_ids: list[int]) -> list[int]:
        """The ids of the failed items of these batches (what a filtered replay copies)."""
        store = self.require_database()
        ids: list[int] = []
        for batch_id in batch_ids:
            ids += [it["id"] for it in await store.failed_items(run_id, batch_id)]
        return ids

    async def audit_entries(self, run_id: int | None, limit: int) -> list[AuditEntry]:
        store = self.require_database()
        return await entries(store, run_id, limit=limit)

    async def checkpoints(self, run_id: int) -> list[dict[str, Any]]:
        store = self.require_database()
        return await store.list_checkpoints(run_id)

    async def metrics_series(self, run_id: int, limit: int = 300) -> list[MetricSample]:
        store = self.require_database()
        return await store.metric_series(run_id, limit=limit)

    async def kind_query(self, run_id: int, name: str, **kw: Any) -> Any:
        """The job kind's named query ``name`` over run ``run_id`` (``JobKind.queries``).

        An unknown run, or a kind without that query, is an :class:`InputError` (one line)."""
        store = self.require_database()
        kind_name = self._kind_of.get(run_id)
        if kind_name is None:
            run = await self.run(run_id)
            if run is None:
                raise InputError(f"run #{run_id}: no such run")
            kind_name = run.kind
        queries = self.kinds(kind_name).queries
        if name not in queries:
            raise InputError(f"job kind {kind_name!r} has no query {name!r} "
                             f"(it has: {', '.join(sorted(queries)) or 'none'})")
        return await queries[name](store, run_id, **kw)

def write_private(path: Path, text: str) -> None:
    """Reports and exports hold findings and error texts: created 0600, like everything batchdeck writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
        os.fchmod(out.fileno(), 0o600)      # an existing file keeps no wider mode
        out.write(text)
