"""The runner: plans a run, feeds its items to a fixed pool of workers, records results.

Shape (see docs/ARCHITECTURE in ../shared): a *feeder* keyset-reads pending
items in (priority, seq) order, cuts them into batches of the size the
:class:`~engine.sizing.BatchSizer` chose and puts them on a bounded queue; a
fixed pool of worker tasks (as many as the largest allowed concurrency; those
above the current limit park) takes them; the one
:class:`~engine.recorder.Recorder` commits results in batches. Nothing here
creates a task per item.

Invariant (tested): ``pending + in_flight + done + failed + skipped == total``
at every commit, in memory and in SQLite.

Retries never hold a worker: a failed item goes back to ``pending`` with a
``not_before`` and waits in a small in-memory heap (and in SQLite, so a crash
loses nothing); the feeder dispatches it when due.

Pause gives in-flight items ``HALT_GRACE_S`` to finish, then cancels the workers
still busy (blocked on a rate limiter, a retry-after, a breaker or pacing wait, or
a slow request) and returns their items, and the queued ones, to pending; then it
writes a checkpoint. Cancel does the same and ends the run; a signal
(SIGINT/SIGTERM) pauses and ends the process with a resumable run. So every wait
ends within a second of the command, and an item interrupted mid-request runs
again on resume (at least once, as after a crash). Planning is interrupted the
same way: its items so far stay pending and a resume plans again (by key,
idempotently). A heartbeat lets another
process see that a run whose owner died is ``interrupted``; resuming it puts
its in-flight items back to pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import inspect
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import psutil

from engine.breaker import BreakerRegistry, track_outcomes
from engine.config import AppConfig
from engine.errors import BatchProcessingError, ErrorClass, InputError, classify
from engine.kinds import Connection, ServiceRequest
from engine.metrics import LatencyWindow, build_report, report_markdown
from engine.models import (
    BatchState,
    BatchView,
    Counts,
    Item,
    ItemState,
    MetricSample,
    PlannedItem,
    RunInfo,
    RunSnapshot,
    RunState,
)
from engine.phases import PhaseCounter
from engine.processor import Processor, RunContext
from engine.recorder import Recorder
from engine.retry import RetryPlanner
from engine.sizing import BatchOutcome, BatchSizer
from engine.source import EngineEvent
from engine.store import Store

log = logging.getLogger("batchdeck.runner")

PLAN_CHUNK = 5000
FEED_PAGE = 2048
TICK_S = 0.5
RECENT_BATCHES = 200
SERIES_LEN = 600
STALL_SAMPLES = 5         # one-second samples with nothing finished: the throughput is zero
EVENTS_LEN = 1000
#: how long pause/cancel/stop let in-flight items finish before cancelling them (see module doc)
HALT_GRACE_S = 0.5


@dataclass(slots=True)
class _Batch:
    id: int
    size: int
    lane: str
    started_at: float
    remaining: int
    done: int = 0
    failed: int = 0
    retried: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: dict[ErrorClass, int] = field(default_factory=dict)

    def view(self, run_id: int, state: BatchState, ended_at: float | None) -> BatchView:
        return BatchView(
            id=self.id, run_id=run_id, size=self.size, state=state, done=self.done, failed=self.failed,
            retried=self.retried, p95_ms=_p95(self.latencies), started_at=self.started_at, ended_at=ended_at,
        )


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3)


_DONE = ItemState.DONE.value


def _dumps(value: Any) -> str:
    """JSON text for SQLite; orjson because the planner and feeder do this per item."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _one_line(exc: BaseException) -> InputError:
    return exc if isinstance(exc, InputError) else InputError(_short(exc))


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:500]


class Runner:
    """Executes one run in this process. Create with :meth:`Engine.start`."""

    def __init__(
        self,
        store: Store,
        run: RunInfo,
        processor: Processor,
        config: AppConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.run_info = run
        self.run_id = run.id
        self.processor = processor
        self.config = config
        self.clock = clock
        self.github: Any = None      # the run's GitHub client, when its services have one (use_services)
        self.counts = Counts()
        self.sizer = BatchSizer(config.batch, config.batch.default_strategy)
        self.retry = RetryPlanner(config)
        self.events: deque[EngineEvent] = deque(maxlen=EVENTS_LEN)
        self.breakers = BreakerRegistry(config, on_transition=self._on_breaker)
        self.ctx = RunContext(
            run_id=run.id, config=config, store=store, breakers=self.breakers, spec=run.spec,
            _spawn=self._spawn,
        )
        self.recorder = Recorder(store, on_commit=self._on_commit)
        self.ctx._write = self.recorder.add
        self.pool_size = config.batch.max_concurrent_requests
        # A first try that succeeds is fully described by its item row (state, batch,
        # duration_ms); attempts rows record every try only when log_batch_metrics asks
        # for it, and every failed try always. This halves the rows a run writes.
        self._record_ok_attempts = config.batch.log_batch_metrics
        # process_batch without batch_lanes takes every lane; with it, only those lanes
        self._has_batch_lanes = callable(getattr(processor, "process_batch", None))
        self._batch_lanes = frozenset(getattr(processor, "batch_lanes", None) or ())
        self._batch_every_lane = self._has_batch_lanes and not self._batch_lanes
        # a kind may size its own batches (ast-index: by parse time); the sizer's size is its input
        self._kind_batch_size = getattr(processor, "next_batch_size", None)
        self._queue: asyncio.Queue[list[Item]] = asyncio.Queue(maxsize=self.pool_size * 8)
        self._dispatched: set[int] = set()
        # ids released by recent commits, for pages read before those commits (see _stale_ids)
        self._commit_epoch = 0
        self._released_log: deque[tuple[int, list[int]]] = deque(maxlen=256)
        self._awaiting: dict[int, Item] = {}
        self._retry_heap: list[tuple[float, int, int]] = []
        self._batches: dict[int, _Batch] = {}
        self._recent: deque[BatchView] = deque(maxlen=RECENT_BATCHES)
        self._series: deque[MetricSample] = deque(maxlen=SERIES_LEN)
        self._latency = LatencyWindow()
        self._interval_errors: dict[str, int] = {}
        self.errors_by_class: dict[str, int] = {}
        self.retries = 0
        self._next_seq = 0
        self._next_batch = 0
        self._rewind: tuple[int, int] | None = None
        self._gate = asyncio.Event()
        self._gate_changed = asyncio.Event()
        self._feed_wake = asyncio.Event()
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._done = asyncio.Event()
        self._final: tuple[RunState, str | None] = (RunState.COMPLETED, None)
        self._feeder_task: asyncio.Task | None = None
        self._tasks: list[asyncio.Task] = []
        self._workers: list[asyncio.Task] = []
        self._working: dict[int, asyncio.Task] = {}     # worker index -> its task, while it holds a unit
        self._handled_control: set[int] = set()
        self._next_checkpoint = config.batch.checkpoint_interval
        self._active_since: float | None = None
        self._active_s = 0.0
        self._rate = 0.0
        self._last_tick = (0.0, 0)
        self.state = RunState.PENDING
        self._control_lock = asyncio.Lock()
        self._background: set[asyncio.Task] = set()
        self._os_process = psutil.Process()
        self._memory_pressure = False
        self.phases = PhaseCounter(getattr(processor, "spawning_kinds", None))
        self._planning = False
        self._idle_samples = 0

    # ------------------------------------------------------------------ public control
    async def pause(self, reason: str = "paused by operator") -> None:
        async with self._control_lock:
            if self.state is not RunState.RUNNING:
                return
            self._set_state(RunState.PAUSED, reason)
            await self._halt()
            self._checkpoint("pause")
            with contextlib.suppress(InputError):    # a refused write: the ticker stops the run
                await self.recorder.flush()

    async def resume(self) -> None:
        async with self._control_lock:
            if self.state is not RunState.PAUSED or self._done.is_set():
                return
            self._set_state(RunState.RUNNING, "resumed")
            self._open_gate()
            self._check_complete()

    async def cancel(self, reason: str = "cancelled by operator") -> None:
        self._finish(RunState.CANCELLED, reason)

    async def stop(self, reason: str = "stopped") -> None:
        """End this process's part of the run, leaving it resumable (SIGINT/SIGTERM).

        In-flight items get ``HALT_GRACE_S`` and are then interrupted back to pending
        (:meth:`_halt`): one may be waiting out a secondary-limit pause of a minute or
        more, and a stop must take effect within a second."""
        self._finish(RunState.PAUSED, reason)

    def set_concurrency(self, n: int) -> int:
        value = self.sizer.set_concurrency(n)
        self._pulse()
        self._event("concurrency", f"concurrency set to {self.sizer.concurrency}")
        return value if value is not None else self.sizer.concurrency

    def set_strategy(self, name: str) -> None:
        self.sizer.set_strategy(name)
        self._pulse()
        self._event("strategy", f"strategy set to {name}")

    async def wait(self) -> RunState:
        await self._done.wait()
        return self._final[0]

    # ------------------------------------------------------------------ the run
    async def run(self) -> RunState:
        await self._start()
        self.recorder.start()
        self._attach_cache()
        try:
            flags = await self.store.run_flags(self.run_id)
            if not flags.get("planned"):
                await self._interruptible(self._plan())
            if not self._done.is_set():
                await self._process()
        except asyncio.CancelledError:
            self._final = (RunState.PAUSED, "stopped")
            raise
        except Exception as exc:
            if self.recorder.error is None:
                self._fail_with(exc)
            else:
                self._final = (RunState.PAUSED, f"{_short(self.recorder.error)}; resume to continue")
        finally:
            await self._close()
        if self.recorder.error is not None:
            raise _one_line(self.recorder.error)
        return self._final[0]

    def _fail_with(self, exc: Exception) -> None:
        if isinstance(exc, BatchProcessingError | InputError):
            # A 401 while listing repositories, a bad spec: the run fails with the reason,
            # and keeps what it had (resumable once the cause is fixed).
            self._final = (RunState.FAILED, _short(exc))
        else:
            log.exception("run %s failed", self.run_id, exc_info=exc)
            self._final = (RunState.FAILED, f"{type(exc).__name__}: {_short(exc)}")

    async def _start(self) -> None:
        recovered = await self.store.recover_in_flight(self.run_id)
        self.counts = await self.store.counts(self.run_id)
        self._next_seq = await self.store.max_seq(self.run_id)
        self._next_batch = await self.store.max_batch_id(self.run_id)
        await self.phases.load(self.store, self.run_id)
        flags = await self.store.run_flags(self.run_id)
        self._active_s = flags.get("active_s") or 0.0
        stats = flags.get("stats") or {}
        self.ctx.counters.update({k: v for k, v in stats.get("counters", {}).items() if isinstance(v, int)})
        self.retries = stats.get("retries", 0)
        self.errors_by_class = dict(stats.get("errors_by_class", {}))
        now = self.clock()
        await self.store.write(
            "UPDATE runs SET state='running', started_at=coalesce(started_at, ?), heartbeat_at=?, owner_pid=?, "
            "owner_host=?, message=NULL, finished_at=NULL WHERE id=?",
            (now, now, os.getpid(), os.uname().nodename, self.run_id),
        )
        self._set_state(RunState.RUNNING, f"started ({recovered} in-flight items recovered)" if recovered
                        else "started")
        self._open_gate()

    async def _interruptible(self, work: Any) -> None:
        """Run ``work`` until it ends or the run is told to stop (a plan listing repositories
        may wait on a rate limiter for an hour: Ctrl-C must not wait with it)."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self._done.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not task.cancelled():
            task.result()

    async def _plan(self) -> None:
        self._event("run_state", "planning")
        self._planning = True
        plan = self.processor.plan(self.run_info.spec, self.ctx)
        if inspect.isawaitable(plan):
            plan = await plan
        chunk: list[tuple] = []
        digest = hashlib.sha256()
        lanes: dict[str, int] = {}
        planned = 0

        async def flush_chunk() -> None:
            # hand the chunk to the recorder and let it commit in its thread while the next
            # chunk is generated; wait only when two chunks are already waiting
            self.recorder.insert_items(list(chunk))
            chunk.clear()
            if self.recorder.backlog >= 2 * PLAN_CHUNK:
                await self.recorder.flush()
            else:
                await asyncio.sleep(0)

        def add(p: PlannedItem) -> None:
            nonlocal planned
            self._next_seq += 1
            planned += 1
            digest.update(p.key.encode() + b"\n")
            lanes[p.lane] = lanes.get(p.lane, 0) + 1
            self.phases.add(p.key)
            chunk.append((self.run_id, self._next_seq, p.key, _dumps(p.payload), p.priority, p.lane))

        if hasattr(plan, "__aiter__"):
            async for p in plan:
                add(p)
                if len(chunk) >= PLAN_CHUNK:
                    await flush_chunk()
        else:
            for p in plan:
                add(p)
                if len(chunk) >= PLAN_CHUNK:
                    await flush_chunk()
        await flush_chunk()
        await self.recorder.flush()
        self.counts = await self.store.counts(self.run_id)
        self._next_seq = await self.store.max_seq(self.run_id)
        await self.phases.load(self.store, self.run_id)   # a re-plan after a crash inserts nothing twice
        self._planning = False
        graph = {
            "kind": self.run_info.kind, "spec": self.run_info.spec, "planned": planned,
            "total": self.counts.total, "lanes": lanes, "keys_sha256": digest.hexdigest(),
            "table": "items", "note": "every planned item is a row of the items table of this run",
        }
        self.recorder.add_json(
            "INSERT INTO artifacts (run_id, batch_id, kind, created_at, summary, data) VALUES (?, NULL, ?, ?, ?, ?)",
            self.run_id, "task_graph", self.clock(), f"{planned} items planned", graph,
        )
        self.recorder.add("UPDATE runs SET planned=1 WHERE id=?", [(self.run_id,)])
        await self.recorder.flush()
        self._event("artifact", f"task graph stored: {planned} items")

    def _attach_cache(self) -> None:
        cache = getattr(self.github, "cache", None)
        if cache is not None and hasattr(cache, "attach"):
            cache.attach(self.recorder)

    async def _process(self) -> None:
        self._workers = [self._new_worker(i) for i in range(self.pool_size)]
        self._tasks = [asyncio.create_task(self._ticker(), name="batchdeck-ticker")]
        self._start_feeder()
        self._check_complete()
        await self._done.wait()

    async def _close(self) -> None:
        state, message = self._final
        try:
            await self._halt()
        finally:
            tasks = [*self._tasks, *self._workers]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._accumulate_active()
        self._set_state(state, message)
        self._checkpoint(state.value)
        self._write_live()
        now = self.clock()
        finished_at = now if state.finished else None
        owner = None
        self.recorder.add(
            "UPDATE runs SET state=?, message=?, finished_at=?, owner_pid=?, heartbeat_at=?, active_s=? WHERE id=?",
            [(state.value, message, finished_at, owner, now, self._active_s, self.run_id)],
        )
        cache = getattr(self.github, "cache", None)
        if cache is not None and hasattr(cache, "detach"):
            cache.detach()
        try:
            await self.recorder.stop()
        except Exception:
            # the database refuses writes: say so once; with a dead owner the run reads as
            # interrupted (in-flight items back to pending) and resumes once it can be written
            with contextlib.suppress(Exception):
                await self.store.write("UPDATE runs SET state=?, message=?, owner_pid=NULL WHERE id=?",
                                       (RunState.PAUSED.value, message, self.run_id))
            return
        if state in (RunState.COMPLETED, RunState.FAILED, RunState.CANCELLED):
            report = await build_report(self.store, self.run_id)
            await self.store.add_artifact(
                self.run_id, "report", {"json": report, "markdown": report_markdown(report)},
                summary=f"{report['done']}/{report['total']} done, {report['items_per_s']:.1f} items/s",
            )
            self._event("artifact", "performance report stored")

    # ------------------------------------------------------------------ state helpers
    def _set_state(self, state: RunState, message: str | None = None) -> None:
        if state is RunState.RUNNING and self._active_since is None:
            self._active_since = time.monotonic()
        elif state is not RunState.RUNNING:
            self._accumulate_active()
        self.state = state
        self.run_info.state = state
        self.run_info.message = message
        self.recorder.add("UPDATE runs SET state=?, message=? WHERE id=?", [(state.value, message, self.run_id)])
        self._event("run_state", f"{state.value}" + (f": {message}" if message else ""))

    def _accumulate_active(self) -> None:
        if self._active_since is not None:
            self._active_s += time.monotonic() - self._active_since
            self._active_since = None

    def _finish(self, state: RunState, message: str | None) -> None:
        if not self._done.is_set():
            self._final = (state, message)
            self._done.set()
            self._gate.clear()
            self._pulse()

    def _event(self, kind: str, message: str, **data: Any) -> None:
        self.events.append(EngineEvent(self.clock(), kind, self.run_id, message, data))

    def _on_breaker(self, lane: str, transition: Any) -> None:
        self._event("breaker", f"breaker {lane}: {transition.from_state} → {transition.to_state} "
                               f"({transition.reason})")

    def _open_gate(self) -> None:
        self._gate.set()
        self._start_feeder()
        self._pulse()

    def _pulse(self) -> None:
        self._gate_changed.set()
        self._gate_changed = asyncio.Event()

    def _start_feeder(self) -> None:
        if self._workers and (self._feeder_task is None or self._feeder_task.done()):
            self._feeder_task = asyncio.create_task(self._feeder(), name="batchdeck-feeder")

    async def _halt(self) -> None:
        """Stop feeding, return queued items to pending, give in-flight ones ``HALT_GRACE_S``
        to finish, then cancel the workers still holding items (their items go back to
        pending) and put fresh workers in their place for a later resume."""
        self._gate.clear()
        self._pulse()
        if self._feeder_task is not None:
            self._feeder_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeder_task
            self._feeder_task = None
        while not self._queue.empty():
            for item in self._queue.get_nowait():
                self._return_to_pending(item)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), HALT_GRACE_S)
        stuck = dict(self._working)
        for task in stuck.values():
            task.cancel()
        for index, task in stuck.items():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            if self._workers[index] is task:
                self._workers[index] = self._new_worker(index)
        if stuck:
            self._event("halt", f"{len(stuck)} workers still waiting were stopped; their items are pending again")

    # ------------------------------------------------------------------ feeder
    async def _read_page(self, cursor: tuple[int, int] | None) -> tuple[list[tuple], int]:
        """A page of pending rows and the commit epoch it was read at (see :meth:`_fresh`)."""
        epoch = self._commit_epoch
        return await self.store.pending_page(self.run_id, cursor, FEED_PAGE), epoch

    def _stale_ids(self, epoch: int) -> set[int] | None:
        """Items released by commits after ``epoch``: a page read before those commits may show
        them as pending although they are done (or requeued, and waiting in the retry heap).
        None when the log no longer reaches back that far: the page must be read again."""
        if epoch == self._commit_epoch:
            return set()
        if not self._released_log:
            return set()
        if self._released_log[0][0] > epoch + 1 and len(self._released_log) == self._released_log.maxlen:
            return None
        stale: set[int] = set()
        for committed, ids in self._released_log:
            if committed > epoch:
                stale.update(ids)
        return stale

    async def _feeder(self) -> None:
        cursor: tuple[int, int] | None = None
        prefetch: asyncio.Future | None = None
        prefetch_from: tuple[int, int] | None = None
        try:
            while self._gate.is_set():
                if self._rewind is not None:
                    if cursor is not None and self._rewind < cursor:
                        cursor = self._rewind
                    self._rewind = None
                if prefetch is not None and prefetch_from == cursor:
                    rows, epoch = await prefetch
                else:
                    if prefetch is not None:
                        prefetch.cancel()
                    rows, epoch = await self._read_page(cursor)
                prefetch = None
                stale = self._stale_ids(epoch)
                if stale is None:
                    rows, epoch = await self._read_page(cursor)
                    stale = self._stale_ids(epoch) or set()
                if len(rows) == FEED_PAGE:
                    # read the next page while this one is dispatched (put blocks while workers are busy)
                    prefetch_from = (rows[-1][4], rows[-1][1])
                    prefetch = asyncio.ensure_future(self._read_page(prefetch_from))
                now = self.clock()
                ready: list[Item] = []
                for item_id, seq, key, payload, priority, lane, attempts, not_before in rows:
                    cursor = (priority, seq)
                    if item_id in self._dispatched or item_id in self._awaiting or item_id in stale:
                        continue
                    item = Item(item_id, self.run_id, seq, key, orjson.loads(payload), priority, lane, attempts)
                    if not_before is not None and not_before > now:
                        self._schedule_retry(item, not_before)
                        continue
                    ready.append(item)
                # due retries last: the page above skipped them (they are still in _awaiting)
                ready.extend(self._due_retries(now))
                if ready:
                    await self._dispatch(ready)
                if len(rows) < FEED_PAGE:
                    cursor = None
                    if not ready:
                        timeout = 1.0
                        if self._retry_heap:
                            timeout = min(timeout, max(0.0, self._retry_heap[0][0] - self.clock()))
                        self._feed_wake.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._feed_wake.wait(), timeout)
        finally:
            if prefetch is not None:
                prefetch.cancel()

    def _due_retries(self, now: float) -> list[Item]:
        ready: list[Item] = []
        while self._retry_heap and self._retry_heap[0][0] <= now:
            due, _, item_id = heapq.heappop(self._retry_heap)
            item = self._awaiting.get(item_id)
            if item is None:
                continue
            if item_id in self._dispatched:      # its requeue is not committed yet: try again shortly
                heapq.heappush(self._retry_heap, (now + 0.05, item.seq, item_id))
                break
            del self._awaiting[item_id]
            ready.append(item)
        return ready

    def _schedule_retry(self, item: Item, not_before: float) -> None:
        self._awaiting[item.id] = item
        heapq.heappush(self._retry_heap, (not_before, item.seq, item.id))

    async def _dispatch(self, items: list[Item]) -> None:
        size = self.sizer.batch_size
        if self._kind_batch_size is not None:    # ...and is the size shown and sampled
            size = self.sizer.batch_size = max(1, int(self._kind_batch_size(size)))
        start = 0
        while start < len(items):
            chunk = items[start:start + size]
            start += size
            if not self._has_batch_lanes:
                groups = [chunk]
            else:
                by_lane: dict[str, list[Item]] = {}
                for item in chunk:
                    by_lane.setdefault(item.lane, []).append(item)
                groups = list(by_lane.values())
            for group in groups:
                self._open_batch(group)
                units = [group] if self._whole_batch(group[0].lane) else [[item] for item in group]
                put = 0
                try:
                    for unit in units:
                        await self._queue.put(unit)
                        put += 1
                except asyncio.CancelledError:
                    for unit in units[put:]:
                        for item in unit:
                            self._return_to_pending(item)
                    raise   # items[start:] were never claimed: still pending, nothing to undo

    def _whole_batch(self, lane: str) -> bool:
        """Does this lane go to ``process_batch`` as whole batches?"""
        return self._has_batch_lanes and (self._batch_every_lane or lane in self._batch_lanes)

    def _open_batch(self, items: list[Item]) -> _Batch:
        self._next_batch += 1
        now = self.clock()
        batch = _Batch(self._next_batch, len(items), items[0].lane, now, len(items))
        self._batches[batch.id] = batch
        self.recorder.upsert_batch((self.run_id, batch.id, batch.size, batch.lane, BatchState.RUNNING.value,
                                    0, 0, 0, None, now, None))
        for item in items:
            item.batch_id = batch.id
            self._dispatched.add(item.id)
            self.recorder.update_item(
                (ItemState.IN_FLIGHT.value, item.attempts, None, batch.id, None, None, None, None, now, item.id),
                release=False,
            )
        n = len(items)
        self.counts.pending -= n
        self.counts.in_flight += n
        self._event("batch_started", f"batch {batch.id}: {n} items", batch=batch.id)
        return batch

    def _return_to_pending(self, item: Item) -> None:
        self.recorder.update_item(
            (ItemState.PENDING.value, item.attempts, None, None, None, None, None, None, self.clock(), item.id),
            release=True,
        )
        self.counts.in_flight -= 1
        self.counts.pending += 1
        batch = self._batches.get(item.batch_id or -1)
        if batch is not None:
            batch.size -= 1
            batch.remaining -= 1
            if batch.remaining == 0:
                self._end_batch(batch)

    def _on_commit(self, released: list[int], skipped_spawns: int) -> None:
        if skipped_spawns:      # keys the run already had (re-run after a crash): counted once
            self.counts.total -= skipped_spawns
            self.counts.pending -= skipped_spawns
            self._check_complete()
        self._commit_epoch += 1
        if released:
            self._dispatched.difference_update(released)
            self._released_log.append((self._commit_epoch, released))
        self._feed_wake.set()

    def _spawn(self, planned: PlannedItem) -> None:
        self._next_seq += 1
        seq = self._next_seq
        self.recorder.spawn_items(
            [(self.run_id, seq, planned.key, _dumps(planned.payload), planned.priority, planned.lane)]
        )
        self.counts.total += 1
        self.counts.pending += 1
        self.phases.add(planned.key, spawned=True)
        mark = (planned.priority, seq - 1)
        if self._rewind is None or mark < self._rewind:
            self._rewind = mark

    # ------------------------------------------------------------------ workers
    def _new_worker(self, index: int) -> asyncio.Task:
        return asyncio.create_task(self._worker(index), name=f"batchdeck-worker-{index}")

    async def _worker(self, index: int) -> None:
        heard = track_outcomes()   # lanes whose breaker the item's own requests fed (see engine.breaker)
        while True:
            while index >= self.sizer.concurrency or not self._gate.is_set():
                await self._gate_changed.wait()
            unit = await self._queue.get()
            size = len(unit)
            self._busy += size
            self._idle.clear()
            self._working[index] = asyncio.current_task()  # type: ignore[assignment]
            heard.clear()
            try:
                if self._whole_batch(unit[0].lane):
                    await self._run_batch_unit(unit, heard)
                else:
                    await self._run_item(unit[0], heard)
            finally:
                self._working.pop(index, None)
                self._busy -= size
                if self._busy == 0:
                    self._idle.set()

    async def _admit(self, lane: str) -> Any:
        breaker = self.breakers.get(lane)
        permit = breaker.try_acquire()
        if permit is not None:
            return permit
        self._event("breaker", f"lane {lane} waits for its breaker ({breaker.state.value})")
        return await breaker.acquire()

    async def _run_item(self, item: Item, heard: set[str]) -> None:
        breaker = self.breakers.get(item.lane)
        permit = None
        started = self.clock()
        t0 = time.perf_counter()
        try:
            # Hot path: a closed breaker needs no permit (permits matter for half-open probes).
            if not breaker.closed:
                permit = await self._admit(item.lane)
            result = await self.processor.process(item, self.ctx)
        except asyncio.CancelledError:
            if permit is not None:
                permit.release()
            self._return_to_pending(item)
            raise
        except Exception as exc:
            duration = (time.perf_counter() - t0) * 1000
            if item.lane in heard:          # its request's outcome is recorded already
                if permit is not None:
                    permit.release()
            else:
                breaker.record_failure(classify(exc), permit)
            self._failed(item, exc, started, duration)
        else:
            duration = (time.perf_counter() - t0) * 1000
            if item.lane in heard:
                if permit is not None:
                    permit.release()
            else:
                breaker.record_success(permit)
            self._succeeded(item, result, started, duration)

    async def _run_batch_unit(self, items: list[Item], heard: set[str]) -> None:
        permit = None
        started = self.clock()
        t0 = time.perf_counter()
        try:
            permit = await self._admit(items[0].lane)
            results = await self.processor.process_batch(items, self.ctx)  # type: ignore[attr-defined]
            if len(results) != len(items):
                raise BatchProcessingError(
                    f"process_batch returned {len(results)} results for {len(items)} items"
                )
        except asyncio.CancelledError:
            if permit is not None:
                permit.release()
            for item in items:
                self._return_to_pending(item)
            raise
        except Exception as exc:
            results = [exc] * len(items)
        duration = (time.perf_counter() - t0) * 1000 / max(1, len(items))
        errors = [r for r in results if isinstance(r, BaseException)]
        if permit is None:
            pass
        elif items[0].lane in heard:        # its requests' outcomes are recorded already
            permit.release()
        elif errors:
            permit.failure(classify(errors[0]))
        else:
            permit.success()
        for item, result in zip(items, results, strict=True):
            if isinstance(result, BaseException):
                self._failed(item, result, started, duration)
            else:
                self._succeeded(item, result, started, duration)

    def _succeeded(self, item: Item, result: Any, started: float, duration_ms: float) -> None:
        # the hot path of every run: plain locals and string states, no clock call
        batch_id = item.batch_id
        self.recorder.update_item(
            (_DONE, item.attempts, None, batch_id, None, None, None if result is None else _dumps(result),
             duration_ms, started + duration_ms / 1000, item.id),
            release=True,
        )
        if self._record_ok_attempts:
            self.recorder.add_attempt((self.run_id, item.id, batch_id, started, duration_ms, "ok", None, None))
        counts = self.counts
        counts.in_flight -= 1
        counts.done += 1
        self.phases.finish(item.key)
        self._latency.add(duration_ms)
        batch = self._batches.get(batch_id)
        if batch is not None:
            batch.done += 1
            batch.latencies.append(duration_ms)
            batch.remaining -= 1
            if batch.remaining == 0:
                self._end_batch(batch)
        if counts.done + counts.failed + counts.skipped >= self._next_checkpoint or (
                counts.pending == 0 and counts.in_flight == 0):
            self._after_finish()

    def _failed(self, item: Item, exc: BaseException, started: float, duration_ms: float) -> None:
        now = self.clock()
        error_class = classify(exc)
        message = _short(exc)
        status = getattr(exc, "status_code", None)
        self.errors_by_class[error_class.value] = self.errors_by_class.get(error_class.value, 0) + 1
        self._interval_errors[error_class.value] = self._interval_errors.get(error_class.value, 0) + 1
        batch = self._batches.get(item.batch_id or -1)
        if batch is not None:
            batch.errors[error_class] = batch.errors.get(error_class, 0) + 1
        if getattr(exc, "fatal", False):
            # The item is not at fault (a revoked token, say): keep it for the resume.
            self.recorder.add_attempt((self.run_id, item.id, item.batch_id, started, duration_ms, "fatal",
                                       error_class.value, status))
            self._return_to_pending(item)
            self._event("error", f"fatal {error_class.value} error: {message}")
            self._finish(RunState.FAILED, message)
            return
        decision = self.retry.decide(exc, item.attempts)
        if decision.retry:
            item.attempts += 1
            not_before = now + decision.delay
            self.recorder.update_item(
                (ItemState.PENDING.value, item.attempts, not_before, item.batch_id, error_class.value, message,
                 None, duration_ms, now, item.id),
                release=True,
            )
            self.recorder.add_attempt((self.run_id, item.id, item.batch_id, started, duration_ms, "retry",
                                       error_class.value, status))
            self.retries += 1
            self.counts.in_flight -= 1
            self.counts.pending += 1
            self._schedule_retry(item, not_before)
            if batch is not None:
                batch.retried += 1
                self._batch_item_left(batch)
            return
        self.recorder.update_item(
            (ItemState.FAILED.value, item.attempts, None, item.batch_id, error_class.value, message, None,
             duration_ms, now, item.id),
            release=True,
        )
        self.recorder.add_attempt((self.run_id, item.id, item.batch_id, started, duration_ms, "failed",
                                   error_class.value, status))
        self.counts.in_flight -= 1
        self.counts.failed += 1
        self.phases.finish(item.key)
        if batch is not None:
            batch.failed += 1
            self._batch_item_left(batch)
        self._after_finish()

    def _batch_item_left(self, batch: _Batch) -> None:
        batch.remaining -= 1
        if batch.remaining == 0:
            self._end_batch(batch)

    def _end_batch(self, batch: _Batch) -> None:
        del self._batches[batch.id]
        now = self.clock()
        if batch.failed and batch.done:
            state = BatchState.PARTIAL
        elif batch.failed:
            state = BatchState.FAILED
        else:
            state = BatchState.DONE
        view = batch.view(self.run_id, state, now)
        self._recent.append(view)
        self.recorder.upsert_batch((self.run_id, batch.id, batch.size, batch.lane, state.value, batch.done,
                                    batch.failed, batch.retried, view.p95_ms, batch.started_at, now))
        self.sizer.on_batch_end(BatchOutcome(
            size=batch.size, succeeded=batch.done, failed=batch.failed + batch.retried, errors=dict(batch.errors),
            p95_ms=view.p95_ms, headroom=self._headroom(), breaker_open=self.breakers.any_not_closed(),
            memory_pressure=self._memory_pressure,
        ))
        self._pulse()
        self._event("batch_ended", f"batch {batch.id} {state.value}: {batch.done} done, {batch.failed} failed, "
                                   f"{batch.retried} retried", batch=batch.id)
        if batch.failed:
            self._replay_artifact(batch)

    def _replay_artifact(self, batch: _Batch) -> None:
        errors = {k.value: v for k, v in batch.errors.items()}
        data = {
            "batch_id": batch.id, "failed": batch.failed, "errors_by_class": errors,
            "config": self.config.to_dict(), "recommendation": recommend(errors),
            "items_query": {"run_id": self.run_id, "batch_id": batch.id, "state": "failed"},
        }
        self.recorder.add_json(
            "INSERT INTO artifacts (run_id, batch_id, kind, created_at, summary, data) VALUES (?, ?, ?, ?, ?, ?)",
            self.run_id, batch.id, "replay", self.clock(),
            f"batch {batch.id}: {batch.failed} failed ({', '.join(sorted(errors)) or 'unknown'})", data,
        )
        self._event("artifact", f"replay artifact for batch {batch.id}", batch=batch.id)

    def _after_finish(self) -> None:
        if self.counts.finished >= self._next_checkpoint:
            self._checkpoint("interval")
            interval = self.config.batch.checkpoint_interval
            self._next_checkpoint = (self.counts.finished // interval + 1) * interval
        self._check_complete()

    def _check_complete(self) -> None:
        if self.counts.pending == 0 and self.counts.in_flight == 0 and self.state is RunState.RUNNING:
            self._finish(RunState.COMPLETED, None)

    def _headroom(self) -> float | None:
        if self.github is None or not hasattr(self.github, "rate_limits"):
            return None
        gauges = [g for g in self.github.rate_limits() if g.limit]
        return min((g.remaining / g.limit for g in gauges), default=None)

    # ------------------------------------------------------------------ checkpoints, ticker
    def _checkpoint(self, reason: str) -> None:
        counts = {k: getattr(self.counts, k) for k in ("total", "pending", "in_flight", "done", "failed", "skipped")}
        data = {"batch_size": self.sizer.batch_size, "concurrency": self.sizer.concurrency,
                "strategy": str(self.sizer.strategy), "retries": self.retries, "next_batch": self._next_batch + 1}
        self.recorder.add_json(
            "INSERT INTO checkpoints (run_id, created_at, reason, counts, data) VALUES (?, ?, ?, ?, ?)",
            self.run_id, self.clock(), reason, counts, data,
        )
        self._event("checkpoint", f"checkpoint ({reason}) at {self.counts.finished}/{self.counts.total}")

    async def _ticker(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(TICK_S)
            tick += 1
            if self.recorder.error is not None:   # disk full, read-only: stop, resumable
                self._finish(RunState.PAUSED, f"{_short(self.recorder.error)}; resume to continue")
                return
            if tick % 2 == 0:
                self._sample()
                self._check_memory()
            self._write_live()
            await self._poll_control()

    def _check_memory(self) -> None:
        """max_memory_usage_mb (the seed's ResourceManager): above it, the sizer shrinks
        batches and concurrency until the process is back under the line."""
        rss_mb = self._os_process.memory_info().rss / 2**20
        pressure = rss_mb > self.config.batch.max_memory_usage_mb
        if pressure and not self._memory_pressure:
            self._event("memory", f"RSS {rss_mb:.0f} MB is above max_memory_usage_mb "
                                  f"{self.config.batch.max_memory_usage_mb}: shrinking batches")
        self._memory_pressure = pressure

    def _sample(self) -> None:
        now = self.clock()
        last_at, last_done = self._last_tick
        finished = self.counts.finished
        if last_at:
            dt = max(1e-6, now - last_at)
            instant = (finished - last_done) / dt
            self._rate = instant if not self._rate else 0.5 * self._rate + 0.5 * instant
            # An average that only halves never reaches zero: after a few seconds with nothing
            # finished the throughput is zero, not a shrinking number feeding a 60-digit ETA.
            self._idle_samples = self._idle_samples + 1 if finished == last_done else 0
            if self._idle_samples >= STALL_SAMPLES:
                self._rate = 0.0
        self._last_tick = (now, finished)
        p50, p95 = self._latency.take()
        sample = MetricSample(
            at=now, items_per_s=round(self._rate, 3), p50_ms=p50, p95_ms=p95, batch_size=self.sizer.batch_size,
            concurrency=self.sizer.concurrency, errors=self._interval_errors, done=finished,
        )
        self._interval_errors = {}
        self._series.append(sample)
        if self.config.batch.enable_performance_monitoring:
            self.recorder.add("INSERT INTO metrics (run_id, at, sample) VALUES (?, ?, ?)",
                              [(self.run_id, now, _dumps(sample))])

    def _live(self) -> dict[str, Any]:
        """What another process needs to rebuild the snapshot (orjson writes the dataclasses)."""
        snap = self._snapshot_parts()
        return {
            "concurrency": snap["concurrency"], "batch_size": snap["batch_size"], "strategy": snap["strategy"],
            "items_per_s": snap["items_per_s"], "eta_s": snap["eta_s"], "rate_limits": snap["rate_limits"],
            "lanes": snap["lanes"], "breakers": snap["breakers"], "in_flight_batches": snap["active_batches"],
            "counts": self.counts, "phases": snap["phases"], "total_final": snap["total_final"],
            "planning": self._planning,
        }

    def _stats(self) -> dict[str, Any]:
        return {"counters": dict(self.ctx.counters), "retries": self.retries,
                "errors_by_class": dict(self.errors_by_class)}

    def _write_live(self) -> None:
        now = self.clock()
        active = self._active_s + (time.monotonic() - self._active_since if self._active_since else 0.0)
        self.recorder.add(
            "UPDATE runs SET heartbeat_at=?, live=?, stats=?, active_s=? WHERE id=?",
            [(now, _dumps(self._live()), _dumps(self._stats()), active, self.run_id)],
        )

    async def _poll_control(self) -> None:
        try:
            rows = await self.store.fetchall(
                "SELECT id, command, arg FROM control WHERE run_id=? AND consumed_at IS NULL ORDER BY id",
                (self.run_id,),
            )
        except Exception:  # a read failing must not stop the run; the next tick retries
            log.exception("control poll failed")
            return
        for control_id, command, arg in rows:
            if control_id in self._handled_control:
                continue
            self._handled_control.add(control_id)
            self.recorder.add("UPDATE control SET consumed_at=? WHERE id=?", [(self.clock(), control_id)])
            self._event("control", f"control command {command}" + (f" {arg}" if arg else ""))
            await self.apply_command(command, arg)

    async def apply_command(self, command: str, arg: str | None) -> None:
        if command == "pause":
            # not awaited: pausing waits for in-flight items, and the ticker must keep beating
            task = asyncio.create_task(self.pause("paused from another process"))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif command == "resume":
            await self.resume()
        elif command == "cancel":
            await self.cancel("cancelled from another process")
        elif command == "concurrency" and arg:
            self.set_concurrency(int(arg))
        elif command == "strategy" and arg:
            self.set_strategy(arg)

    # ------------------------------------------------------------------ snapshot
    def _snapshot_parts(self) -> dict[str, Any]:
        remaining = self.counts.pending + self.counts.in_flight
        total_final = self.phases.total_final(self._planning)
        # No ETA against a total that is still growing, while paused, or with nothing finishing.
        eta = remaining / self._rate if self._rate > 0 and total_final and self.state is RunState.RUNNING \
            else None
        rate_limits = self.github.rate_limits() if self.github is not None and hasattr(self.github, "rate_limits") \
            else []
        lanes = self.github.lanes() if self.github is not None and hasattr(self.github, "lanes") else []
        now = self.clock()
        return {
            "concurrency": self.sizer.concurrency, "batch_size": self.sizer.batch_size,
            "strategy": str(getattr(self.sizer.strategy, "value", self.sizer.strategy)),
            "items_per_s": round(self._rate, 3), "eta_s": eta, "rate_limits": rate_limits, "lanes": lanes,
            "breakers": self.breakers.views(),
            "active_batches": [b.view(self.run_id, BatchState.RUNNING, None) for b in list(self._batches.values())
                               [-50:]],
            "now": now, "phases": self.phases.views(), "total_final": total_final,
        }

    def snapshot(self) -> RunSnapshot:
        parts = self._snapshot_parts()
        counts = Counts(**{k: getattr(self.counts, k) for k in
                           ("total", "pending", "in_flight", "done", "failed", "skipped")})
        batches = list(parts["active_batches"]) + list(reversed(self._recent))
        return RunSnapshot(
            run=self.run_info, counts=counts, items_per_s=parts["items_per_s"], eta_s=parts["eta_s"],
            concurrency=parts["concurrency"], batch_size=parts["batch_size"], strategy=parts["strategy"],
            retries=self.retries, api_requests=self.ctx.counters.get("api_requests", 0),
            api_requests_saved=self.ctx.counters.get("api_requests_saved", 0),
            errors_by_class=dict(self.errors_by_class), rate_limits=list(parts["rate_limits"]),
            lanes=list(parts["lanes"]), breakers=parts["breakers"], recent_batches=batches,
            series=list(self._series)[-300:], taken_at=parts["now"],
            phases=parts["phases"], total_final=parts["total_final"], planning=self._planning,
            counters=dict(self.ctx.counters),
        )

    # ------------------------------------------------------------------ services (engine/kinds.py)
    def service_request(self, connection: Connection) -> ServiceRequest:
        """What the kind's services factory needs: this run, its breakers, counters and writer."""
        return ServiceRequest(run=self.run_info, config=self.config, store=self.store, breakers=self.breakers,
                              count=self.ctx.count, write=self.recorder.add, connection=connection)

    def use_services(self, services: Mapping[str, Any]) -> None:
        """Wire the run's services in (before :meth:`run`): ``github`` is its client, whose HTTP
        cache then writes through this run's recorder."""
        self.ctx.services = dict(services)
        self.github = self.ctx.github = services.get("github")
        self._attach_cache()


# ---------------------------------------------------------------------- helpers shared with the DB source
def recommend(errors: dict[str, int]) -> str:
    """One line an operator can act on, from the error classes of a failed batch."""
    if not errors:
        return "replay as is"
    top = max(errors, key=lambda k: errors[k])
    return {
        "rate_limited": "lower rate_limit_buffer or replay after the bucket resets",
        "secondary_limited": "halve concurrency and replay with the conservative strategy",
        "timeout": "halve concurrency and the batch size, then replay",
        "network": "check connectivity, then replay with more retry_attempts",
        "server": "replay later with more retry_attempts; the API was failing",
        "client": "fix the input: client errors are not retried and will fail again as is",
        "auth": "fix the token, then resume",
    }.get(top, "inspect the errors, then replay")


__all__ = ["Runner", "recommend"]
