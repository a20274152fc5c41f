"""batchdeck as a Python library: the seed's API surface for scripts, notebooks and CI.

What a caller uses is exported from :mod:`engine` (``from engine import Engine, BatchConfig``);
everything else may change. The names follow seed 000 (the batch API reference) where the
concept is the same: :class:`BatchConfig`, :class:`BatchStrategy`, :class:`BatchMetrics`,
:class:`IOCMatch` and the exceptions :class:`BatchProcessingError` (base),
:class:`RateLimitError`, :class:`NetworkError`, :class:`GitHubAPIError`.

Why a layer of its own rather than the core :class:`engine.api.Engine`: the core takes an
``AppConfig``, a kind's spec dict and a :class:`~engine.kinds.Connection`; a script wants
``scan(org=..., iocs=[...])`` with the token found where the CLI finds it, progress as an
async iterator, and findings as values. This module translates; the engine does the work
(the kind's declared services are built by :meth:`engine.api.Engine.start`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from engine.api import Engine as _CoreEngine
from engine.api import RunHandle
from engine.config import AppConfig, BatchConfig, GitHubConfig, load_config
from engine.errors import InputError
from engine.filters import parse_filter
from engine.github.auth import resolve_token
from engine.jobs.ioc_scan.models import IOCMatch
from engine.kinds import Connection, load_kind
from engine.models import RunState
from engine.replay import replay_items, select_failed

T = TypeVar("T")

_POLL_S = 0.2      # how often events() looks for news while a run is quiet


@dataclass(frozen=True)
class BatchMetrics:
    """Performance of one run, in seed 000's terms (``get_batch_metrics()``).

    ``total_requests``: API requests sent; ``successful_requests``: items done;
    ``cache_hits``: requests answered from the ETag cache (304) or not sent at all;
    ``average_batch_size``: mean items per batch; ``total_processing_time``: seconds the
    run was active (pauses excluded); ``api_calls_saved``: requests saved by batching and
    the cache; ``parallel_efficiency``: busy worker time ÷ (active time × concurrency)."""

    total_requests: int
    successful_requests: int
    cache_hits: int
    average_batch_size: float
    total_processing_time: float
    api_calls_saved: int
    parallel_efficiency: float
    failed_items: int = 0
    items_per_second: float = 0.0

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> BatchMetrics:
        counters = report.get("counters") or {}
        return cls(
            total_requests=int(report.get("api_requests", 0)),
            successful_requests=int(report.get("done", 0)),
            cache_hits=int(counters.get("cache_hits", counters.get("not_modified", 0)) or 0),
            average_batch_size=float((report.get("batches") or {}).get("mean_size") or 0.0),
            total_processing_time=float(report.get("duration_s", 0.0)),
            api_calls_saved=int(report.get("api_requests_saved", 0)),
            parallel_efficiency=float(report.get("parallel_efficiency", 0.0)),
            failed_items=int(report.get("failed", 0)),
            items_per_second=float(report.get("items_per_s", 0.0)),
        )


@dataclass(frozen=True)
class RunEvent:
    """Something that happened in a run: ``kind`` is an engine event kind (``batch_ended``,
    ``breaker``, ``run_state``...) or ``progress`` (counts changed) or ``finished`` (the last
    event; ``state`` is final). Text fields came from the outside world: show them as data."""

    kind: str
    run_id: int
    message: str = ""
    state: str = ""
    done: int = 0
    failed: int = 0
    total: int = 0
    data: Mapping[str, Any] = field(default_factory=dict)


class Run:
    """One run started by this process: follow it, steer it, read what it found."""

    def __init__(self, engine: Engine, handle: RunHandle, kind: str) -> None:
        self._engine = engine
        self._handle = handle
        self.kind = kind

    @property
    def id(self) -> int:
        return self._handle.run_id

    def __repr__(self) -> str:
        return f"Run(id={self.id}, kind={self.kind!r})"

    async def wait(self) -> RunState:
        """Until the run stops (completed, failed, paused by a halt, cancelled): its final state."""
        return await asyncio.shield(self._handle.task)

    async def pause(self) -> None:
        """Pause: in-flight items finish, nothing new starts; the run stays resumable.

        A run paused the moment it was started is paused as soon as it is running (the
        runner ignores a pause before then), not silently left to finish."""
        runner, task = self._handle.runner, self._handle.task
        if runner.state is RunState.PENDING and not task.done():
            opened = asyncio.ensure_future(runner.lifecycle.gate.wait())   # set once the run is running
            try:
                await asyncio.wait({opened, task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                opened.cancel()
        await self._handle.pause()

    async def resume(self) -> None:
        await self._handle.resume()

    async def cancel(self) -> None:
        await self._handle.cancel()

    async def events(self) -> AsyncIterator[RunEvent]:
        """The run's events as they happen, a ``progress`` event when its counts move, and a
        ``finished`` event last. Iterating does not steer the run; breaking out is fine."""
        source = self._handle.source
        seen: tuple[int, int, int] | None = None
        while True:
            finished = self._handle.task.done()
            for event in source.drain_events():
                yield RunEvent(kind=str(event.kind), run_id=self.id, message=event.message,
                               data=dict(event.data))
            snap = await source.snapshot()
            counts = (snap.counts.done, snap.counts.failed, snap.counts.total)
            if counts != seen:
                seen = counts
                yield RunEvent(kind="progress", run_id=self.id, state=snap.run.state.value,
                               done=counts[0], failed=counts[1], total=counts[2])
            if finished:
                state = self._handle.task.result() if not self._handle.task.cancelled() else RunState.CANCELLED
                yield RunEvent(kind="finished", run_id=self.id, state=RunState(state).value,
                               done=counts[0], failed=counts[1], total=counts[2])
                return
            await asyncio.wait({self._handle.task}, timeout=_POLL_S)

    async def rows(self, query: str, **kw: Any) -> Any:
        """A named query of the run's kind (``JobKind.queries``) over its own tables."""
        queries = load_kind(self.kind).queries
        if query not in queries:
            raise InputError(f"{self.kind} has no query {query!r}; it has: {', '.join(sorted(queries)) or 'none'}")
        return await queries[query](self._engine.store, self.id, **kw)

    async def findings(self) -> AsyncIterator[IOCMatch]:
        """The IOC matches of this run (an ioc-scan run), in the order they were found."""
        if "findings" not in load_kind(self.kind).queries:
            raise InputError(f"run {self.id} is a {self.kind} run; findings come from ioc-scan runs")
        after = 0
        while True:
            page = await self.rows("findings", after_id=after, limit=500)
            if not page:
                return
            for row in page:
                yield IOCMatch(row["repo"], row["file_path"], row["line_number"], row["package_name"],
                               row["version"], row["ecosystem"], row["ioc_source"], row["kind"])
            after = page[-1]["id"]

    async def complete(self) -> bool:
        """Whether the run (with its replays) covered everything it was asked to: only then
        does "no findings" mean nothing was found. For a scan, the coverage decides (every
        repository listed and scanned); for other kinds, completed with nothing failed."""
        if self.kind == "ioc-scan":
            from engine.jobs.ioc_scan.coverage import coverage

            return (await coverage(self._engine.store, self.id)).complete
        report = await self.report()
        return report["state"] == RunState.COMPLETED.value and not report["failed"] and not report["pending"]

    async def metrics(self) -> BatchMetrics:
        return BatchMetrics.from_report(await self._engine.report(self.id))

    async def report(self) -> dict[str, Any]:
        """The run report (what ``batchdeck report RUN --format json`` prints)."""
        return await self._engine.report(self.id)

    async def replay(self, *, batch: int | None = None, where: str | None = None,
                     connection: Connection | None = None) -> Run:
        """A child run of this run's failed items (of one ``batch``, those ``where`` selects in
        the CLI's ``--where`` grammar), started at once with this run's connection unless one
        is given."""
        chosen = parse_filter(where) if where else None
        items = await select_failed(self._engine.store, self.id, batch_id=batch, where=chosen)
        if not items:
            raise InputError(f"run {self.id} has no failed items{' matching ' + where if where else ''} to replay")
        child = await replay_items(self._engine.store, self.id, items, batch_id=batch, where=chosen)
        return await self._engine._start_run(child, connection or self._engine._connections.get(self.id))


class _Opening:
    """What :meth:`Engine.open` returns: ``await`` it for the engine, or ``async with`` it
    to have the engine closed (its runs stopped resumably) on the way out."""

    def __init__(self, opener: Callable[[], Awaitable[Engine]]) -> None:
        self._opener = opener
        self._engine: Engine | None = None

    def __await__(self) -> Generator[Any, None, Engine]:
        return self._opener().__await__()

    async def __aenter__(self) -> Engine:
        self._engine = await self._opener()
        return self._engine

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._engine is not None:
            await self._engine.close()


def _app_config(config: BatchConfig | AppConfig | None, base: AppConfig, api_url: str | None) -> AppConfig:
    if isinstance(config, AppConfig):
        cfg = config
    elif isinstance(config, BatchConfig):
        cfg = dataclasses.replace(base, batch=config)
    else:
        cfg = base
    if api_url:
        cfg = dataclasses.replace(cfg, github=dataclasses.replace(cfg.github, api_url=api_url))
    return cfg


class Engine(_CoreEngine):
    """The engine for scripts: ``async with Engine.open("runs.db") as engine: ...``."""

    def __init__(self, store: Any, config: AppConfig) -> None:
        super().__init__(store, config)
        self._connections: dict[int, Connection] = {}

    @classmethod
    def open(cls, db_path: str | Path, config: AppConfig | None = None) -> _Opening:  # type: ignore[override]
        """The engine over ``db_path`` (created 0600 if new). ``config`` None: the defaults with
        the ``BATCHDECK_*`` environment applied, as the CLI reads them."""
        async def opener() -> Engine:
            from engine.store import Store

            return cls(await Store.open(db_path), config or load_config(None))
        return _Opening(opener)

    # -- starting runs ---------------------------------------------------------------------------
    def connection(self, *, token: str | None = None, api_url: str | None = None,
                   allow_unauthenticated: bool = False, **extra: Any) -> Connection:
        """How runs reach GitHub: ``token``, else GITHUB_TOKEN / GH_TOKEN / ``gh auth token``
        (as the CLI finds it). Without any, a scan needs ``allow_unauthenticated=True``
        (60 requests an hour)."""
        found = resolve_token(token)
        if found is None and not allow_unauthenticated:
            raise InputError("no GitHub token: pass token=..., set GITHUB_TOKEN, or allow_unauthenticated=True")
        return Connection(token=found, api_url=api_url, assume_yes=True, extra=extra)

    async def _start_run(self, run_id: int, connection: Connection | None) -> Run:
        handle = await self.start(run_id, connection=connection)
        if connection is not None:
            self._connections[run_id] = connection
        run = await self.store.require_run(run_id)
        return Run(self, handle, run.kind)

    async def run(self, kind: str, spec: Mapping[str, Any], *, config: BatchConfig | AppConfig | None = None,
                  connection: Connection | None = None) -> Run:
        """Start a run of any installed job kind from its spec (what ``batchdeck run`` reads)."""
        cfg = _app_config(config, self.config, None)
        run_id = await self.create_run(kind, dict(spec), cfg)
        return await self._start_run(run_id, connection)

    async def resume_run(self, run_id: int, *, connection: Connection | None = None) -> Run:
        """Continue a paused, interrupted or failed run (of this process or an earlier one)."""
        return await self._start_run(run_id, connection or self._connections.get(run_id))

    async def scan(self, *, org: str | Iterable[str] = (), user: str | Iterable[str] = (),
                   repos: Iterable[str] = (), iocs: Iterable[str | Path] = (),
                   config: BatchConfig | AppConfig | None = None, token: str | None = None,
                   api_url: str | None = None, allow_unauthenticated: bool = False,
                   include_archived: bool = False, include_forks: bool = False) -> Run:
        """Scan repositories for compromised package versions (``batchdeck scan``).

        ``iocs``: IOC list files (CSV, JSON, YAML, text); none: the list batchdeck ships."""
        from engine.jobs.ioc_scan.scan import DEFAULT_IOCS, ScanTargets, build_spec

        cfg = _app_config(config, self.config, api_url)
        conn = self.connection(token=token, api_url=cfg.github.api_url, allow_unauthenticated=allow_unauthenticated)
        targets = ScanTargets(orgs=_names(org), users=_names(user), repos=list(repos))
        spec = build_spec(targets, list(iocs) or [DEFAULT_IOCS], include_archived=include_archived,
                          include_forks=include_forks, api_url=cfg.github.api_url)
        spec["authenticated"] = conn.token is not None
        run_id = await self.create_run("ioc-scan", spec, cfg)
        return await self._start_run(run_id, conn)

    async def sync(self, directory: str | Path, *, repo: str, links: str | None = None,
                   config: BatchConfig | AppConfig | None = None, token: str | None = None,
                   api_url: str | None = None) -> Run:
        """Push a planning tree (PRDs, epics, tasks in markdown) into GitHub Issues of ``repo``,
        exactly once (``batchdeck sync DIR --repo O/R``). A bad tree is one InputError naming
        the file and line, before anything is sent."""
        from engine.jobs.issue_sync.cli import NAME, check_repo, sync_spec, with_labels
        from engine.jobs.issue_sync.options import sync_options
        from engine.jobs.issue_sync.tree import load_tree

        check_repo(repo)
        tree = load_tree(directory)
        cfg = _app_config(config, self.config, api_url)
        options = sync_options(cfg)
        with_labels(tree, options)
        conn = self.connection(token=token, api_url=cfg.github.api_url)
        spec = sync_spec(tree, directory, repo, links or options.links, cfg.github.api_url)
        run_id = await self.create_run(NAME, spec, cfg)
        return await self._start_run(run_id, conn)

    async def index(self, directory: str | Path, *, exclude: Iterable[str] = (), workers: int | None = None,
                    config: AppConfig | None = None) -> Run:
        """Index a codebase's source files on every core (``batchdeck index DIR``); read the
        results with ``run.rows("files")`` / ``run.rows("symbol", name=...)``."""
        from engine.jobs.ast_index.job import NAME, build_spec

        spec = build_spec(str(directory), exclude=list(exclude))
        run_id = await self.create_run(NAME, spec, config or self.config)
        extra = {"workers": workers} if workers else {}
        return await self._start_run(run_id, Connection(extra=extra))

    async def process_repositories_batch(self, repositories: Iterable[str], *,
                                         iocs: Iterable[str | Path] = (), **kw: Any) -> list[IOCMatch]:
        """Seed 000's ``BatchCoordinator.process_repositories_batch``: scan ``owner/name``
        repositories and return what was found, once the scan has covered all of them.
        An incomplete scan raises :class:`BatchProcessingError` naming what was not covered."""
        from engine.errors import BatchProcessingError

        run = await self.scan(repos=repositories, iocs=iocs, **kw)
        state = await run.wait()
        if state is not RunState.COMPLETED:
            raise BatchProcessingError(f"scan run {run.id} ended {state.value}: resume it with "
                                       f"engine.resume_run({run.id})")
        if not await run.complete():
            raise BatchProcessingError(f"scan run {run.id} did not cover every repository "
                                       f"(`batchdeck findings {run.id}` names what is missing); "
                                       f"replay its failed items with run.replay()")
        return [match async for match in run.findings()]


def _names(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a loop of its own, for notebooks and scripts without asyncio."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    raise InputError("run_sync() cannot be called from a running event loop (a notebook cell): "
                     "use `await` there instead")


@dataclass(frozen=True)
class ScanOutcome:
    """What :func:`scan_sync` returns: the run, its findings and metrics, and whether it
    completed with full coverage (only then does an empty ``findings`` mean nothing was found)."""

    run_id: int
    state: str
    complete: bool
    findings: list[IOCMatch]
    metrics: BatchMetrics


def scan_sync(db: str | Path, **scan_args: Any) -> ScanOutcome:
    """``Engine.scan`` for code without an event loop: runs the scan to its end."""

    async def go() -> ScanOutcome:
        async with Engine.open(db) as engine:
            run = await engine.scan(**scan_args)
            state = await run.wait()
            report = await run.report()
            found = [m async for m in run.findings()]
            return ScanOutcome(run.id, state.value, await run.complete(), found, BatchMetrics.from_report(report))

    return run_sync(go())


__all__ = ["BatchConfig", "BatchMetrics", "Engine", "GitHubConfig", "IOCMatch", "Run", "RunEvent", "RunState",
           "ScanOutcome", "run_sync", "scan_sync"]
