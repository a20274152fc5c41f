"""The runner: plans a run, feeds its items to a fixed pool of workers, records results.

:class:`Runner` composes the parts in :mod:`engine.run`, one concern each:

* :mod:`engine.run.planner`: the kind's planned items streamed into SQLite, once per run;
* :mod:`engine.run.feeder`: pages of pending items cut into batches on a bounded queue,
  and the items waiting out a retry delay;
* :mod:`engine.run.workers`: the fixed pool of workers running units through the kind;
* :mod:`engine.run.ledger`: item states, counts, batches, checkpoints, replay artifacts;
* :mod:`engine.run.control`: the run's state and gate, the operator's commands, halting;
* :mod:`engine.run.telemetry`: samples, memory, the live row and the snapshot.

The one :class:`~engine.recorder.Recorder` commits everything they write, in batches.
Nothing creates a task per item. A heartbeat (the live row, twice a second) lets another
process see that a run whose owner died is ``interrupted``; resuming it puts its
in-flight items back to pending. Create a runner with :meth:`engine.api.Engine.start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from engine.breaker import BreakerRegistry
from engine.config import AppConfig
from engine.errors import BatchProcessingError, InputError
from engine.events import ControlCommand, EngineEvent, EventKind, EventLog
from engine.kinds import Connection, ServiceRequest
from engine.metrics import build_report, report_markdown
from engine.models import Counts, Item, RunInfo, RunSnapshot, RunState
from engine.phases import PhaseCounter
from engine.processor import Processor, RunContext, spawning_kinds
from engine.recorder import Recorder
from engine.retry import RetryPlanner
from engine.run.control import HALT_GRACE_S, Control, Lifecycle
from engine.run.feeder import Batching, Feeder, RetryWaits
from engine.run.ledger import Ledger, recommend
from engine.run.planner import plan
from engine.run.telemetry import Gauges, RunStats, Telemetry
from engine.run.workers import WorkerPool
from engine.sizing import BatchSizer, concurrency_ceiling
from engine.store import Store
from engine.store_rows import RunEnded

log = logging.getLogger("batchdeck.runner")

TICK_S = 0.5


def _one_line(exc: BaseException) -> InputError:
    return exc if isinstance(exc, InputError) else InputError(_short(exc))


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:500]


@runtime_checkable
class RecordedCache(Protocol):
    """An HTTP cache kept in the run's database (:class:`engine.httpcache.SqliteHttpCache`): while
    the run runs, it writes through the run's one recorder."""

    def attach(self, recorder: Recorder) -> None: ...

    def detach(self) -> None: ...


@runtime_checkable
class CachingClient(Protocol):
    """A client with an HTTP cache (GitHubClient, OwnerRouter). Protocols rather than the classes:
    importing engine.github (httpx, cryptography) would cost every run that has no client."""

    @property
    def cache(self) -> object: ...


def _sqlite_cache(client: object) -> RecordedCache | None:
    cache = client.cache if isinstance(client, CachingClient) else None
    return cache if isinstance(cache, RecordedCache) else None


class Runner:
    """Executes one run in this process. Create with :meth:`Engine.start`."""

    def __init__(self, store: Store, run: RunInfo, processor: Processor, config: AppConfig, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.run_info = run
        self.run_id = run.id
        self.processor = processor
        self.config = config
        self.clock = clock
        self.github: Any = None          # the run's GitHub client, when its services have one
        self.log = EventLog(run.id, clock)
        self.events: deque[EngineEvent] = self.log.events
        self.sizer = BatchSizer(config.batch, config.batch.default_strategy)
        self.breakers = BreakerRegistry(config, on_transition=self._on_breaker)
        self.recorder = Recorder(store, on_commit=self._on_commit)
        self.phases = PhaseCounter(spawning_kinds(processor))
        self.stats = RunStats()
        self.gauges = Gauges()
        self.lifecycle = Lifecycle(run, self.recorder, self.log)
        waits = RetryWaits()
        self.ledger = Ledger(
            run_id=run.id, config=config, clock=clock, recorder=self.recorder, events=self.log,
            lifecycle=self.lifecycle, stats=self.stats, waits=waits, sizer=self.sizer, retry=RetryPlanner(config),
            breakers=self.breakers, phases=self.phases, headroom=self.gauges.headroom,
        )
        self.ctx = RunContext(run_id=run.id, config=config, store=store, breakers=self.breakers, spec=run.spec,
                              _spawn=self.ledger.spawn, _write=self.recorder.add)
        pool_size = concurrency_ceiling(config)
        queue: asyncio.Queue[list[Item]] = asyncio.Queue(maxsize=pool_size * 8)
        batching = Batching.of(processor)
        self.feeder = Feeder(store=store, run_id=run.id, clock=clock, lifecycle=self.lifecycle, ledger=self.ledger,
                             waits=waits, sizer=self.sizer, batching=batching, queue=queue)
        self.workers = WorkerPool(size=pool_size, processor=processor, ctx=self.ctx, clock=clock,
                                  breakers=self.breakers, events=self.log, lifecycle=self.lifecycle,
                                  ledger=self.ledger, sizer=self.sizer, batching=batching, queue=queue)
        self.control = Control(store=store, run_id=run.id, recorder=self.recorder, events=self.log,
                               lifecycle=self.lifecycle, ledger=self.ledger, feeder=self.feeder,
                               workers=self.workers, sizer=self.sizer)
        self.telemetry = Telemetry(run=run, config=config, clock=clock, recorder=self.recorder, events=self.log,
                                   stats=self.stats, gauges=self.gauges, ledger=self.ledger,
                                   lifecycle=self.lifecycle, sizer=self.sizer, breakers=self.breakers,
                                   phases=self.phases, ctx=self.ctx)
        self._ticker: asyncio.Task | None = None

    # ------------------------------------------------------------------ what others read
    @property
    def state(self) -> RunState:
        return self.lifecycle.state

    @property
    def counts(self) -> Counts:
        return self.ledger.counts

    def snapshot(self) -> RunSnapshot:
        return self.telemetry.snapshot()

    # ------------------------------------------------------------------ services (engine/kinds.py)
    def service_request(self, connection: Connection) -> ServiceRequest:
        """What the kind's services factory needs: this run, its breakers, counters and writer."""
        return ServiceRequest(run=self.run_info, config=self.config, store=self.store, breakers=self.breakers,
                              count=self.ctx.count, write=self.recorder.add, connection=connection)

    def use_services(self, services: Mapping[str, Any]) -> None:
        """Wire the run's services in (before :meth:`run`): ``github`` is its client, whose
        gauges the snapshot shows and whose HTTP cache writes through this run's recorder."""
        self.ctx.services = dict(services)
        self.github = self.ctx.github = services.get("github")
        self.gauges.use(self.github)
        cache = _sqlite_cache(self.github)
        if cache is not None:
            cache.attach(self.recorder)

    # ------------------------------------------------------------------ public control
    async def pause(self, reason: str = "paused by operator") -> None:
        await self.control.pause(reason)

    async def resume(self) -> None:
        await self.control.resume()

    async def cancel(self, reason: str = "cancelled by operator") -> None:
        self.control.cancel(reason)

    async def stop(self, reason: str = "stopped") -> None:
        """End this process's part of the run, leaving it resumable (SIGINT/SIGTERM); in-flight
        items get ``HALT_GRACE_S`` and are then interrupted back to pending."""
        self.control.stop(reason)

    def set_concurrency(self, n: int) -> int:
        return self.control.set_concurrency(n)

    def set_strategy(self, name: str) -> None:
        self.control.set_strategy(name)

    async def apply_command(self, command: ControlCommand | str, arg: str | None) -> None:
        await self.control.apply(command, arg)

    async def wait(self) -> RunState:
        await self.lifecycle.done.wait()
        return self.lifecycle.final[0]

    # ------------------------------------------------------------------ the run
    async def run(self) -> RunState:
        await self._start()
        self.recorder.start()
        lifecycle = self.lifecycle
        try:
            flags = await self.store.run_flags(self.run_id)
            if not flags.get("planned"):
                await self._interruptible(plan(
                    run=self.run_info, processor=self.processor, ctx=self.ctx, store=self.store,
                    recorder=self.recorder, ledger=self.ledger, phases=self.phases, lifecycle=lifecycle,
                    events=self.log, clock=self.clock))
            if not lifecycle.done.is_set():
                await self._process()
        except asyncio.CancelledError:
            lifecycle.final = (RunState.PAUSED, "stopped")
            raise
        except Exception as exc:
            if self.recorder.error is None:
                self._fail_with(exc)
            else:
                lifecycle.final = (RunState.PAUSED, f"{_short(self.recorder.error)}; resume to continue")
        finally:
            await self._close()
        if self.recorder.error is not None:
            raise _one_line(self.recorder.error)
        return lifecycle.final[0]

    def _fail_with(self, exc: Exception) -> None:
        if isinstance(exc, BatchProcessingError | InputError):
            # A 401 while listing repositories, a bad spec: the run fails with the reason,
            # and keeps what it had (resumable once the cause is fixed).
            self.lifecycle.final = (RunState.FAILED, _short(exc))
        else:
            log.exception("run %s failed", self.run_id, exc_info=exc)
            self.lifecycle.final = (RunState.FAILED, f"{type(exc).__name__}: {_short(exc)}")

    async def _start(self) -> None:
        recovered = await self.store.recover_in_flight(self.run_id)
        await self.ledger.load(self.store)
        await self.phases.load(self.store, self.run_id)
        flags = await self.store.run_flags(self.run_id)
        self.lifecycle.active_s = flags.get("active_s") or 0.0
        stats = flags.get("stats") or {}
        self.ctx.counters.update({k: v for k, v in stats.get("counters", {}).items() if isinstance(v, int)})
        self.stats.retries = stats.get("retries", 0)
        self.stats.deferrals = stats.get("deferrals", 0)
        self.stats.errors_by_class = dict(stats.get("errors_by_class", {}))
        await self.store.mark_started(self.run_id, self.clock())
        self.lifecycle.set_state(RunState.RUNNING, f"started ({recovered} in-flight items recovered)" if recovered
                                 else "started")
        self.control.open_gate()

    async def _interruptible(self, work: Awaitable[None]) -> None:
        """Run ``work`` until it ends or the run is told to stop (a plan listing repositories
        may wait on a rate limiter for an hour: Ctrl-C must not wait with it)."""
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self.lifecycle.done.wait())
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

    async def _process(self) -> None:
        self.workers.start()
        self._ticker = asyncio.create_task(self._tick(), name="batchdeck-ticker")
        self.feeder.enabled = True
        self.feeder.start()
        self.ledger.check_complete()
        await self.lifecycle.done.wait()

    async def _tick(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(TICK_S)
            tick += 1
            if self.recorder.error is not None:   # disk full, read-only: stop, resumable
                self.lifecycle.finish(RunState.PAUSED, f"{_short(self.recorder.error)}; resume to continue")
                return
            if tick % 2 == 0:
                self.telemetry.sample()
                self.telemetry.check_memory()
            self.telemetry.write_live()
            await self.control.poll()

    async def _close(self) -> None:
        lifecycle = self.lifecycle
        state, message = lifecycle.final
        try:
            await self.control.halt()
        finally:
            tasks = [*([self._ticker] if self._ticker else []), *self.workers.tasks]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        lifecycle.accumulate_active()
        lifecycle.set_state(state, message)
        self.ledger.checkpoint(state.value)
        self.telemetry.write_live()
        now = self.clock()
        self.recorder.end_run(RunEnded(state.value, message, now if state.finished else None, None, now,
                                       lifecycle.active_s, self.run_id))
        cache = _sqlite_cache(self.github)
        if cache is not None:
            cache.detach()
        try:
            await self.recorder.stop()
        except Exception:
            # the database refuses writes: say so once; with a dead owner the run reads as
            # interrupted (in-flight items back to pending) and resumes once it can be written
            with contextlib.suppress(Exception):
                await self.store.mark_unowned(self.run_id, RunState.PAUSED, message)
            return
        if state in (RunState.COMPLETED, RunState.FAILED, RunState.CANCELLED):
            report = await build_report(self.store, self.run_id)
            await self.store.add_artifact(
                self.run_id, "report", {"json": report, "markdown": report_markdown(report)},
                summary=f"{report['done']}/{report['total']} done, {report['items_per_s']:.1f} items/s",
            )
            self.log.emit(EventKind.ARTIFACT, "performance report stored")

    def _on_commit(self, released: list[int], skipped_spawns: int) -> None:
        self.ledger.on_commit(released, skipped_spawns)
        self.feeder.on_commit(released)

    def _on_breaker(self, lane: str, transition: Any) -> None:
        self.log.emit(EventKind.BREAKER, f"breaker {lane}: {transition.from_state} → {transition.to_state} "
                                         f"({transition.reason})")


__all__ = ["HALT_GRACE_S", "Runner", "recommend"]
