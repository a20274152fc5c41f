"""The fixed pool of workers: each takes a unit (one item, or a whole batch) off the queue,
runs it through the kind behind its lane's circuit breaker, and hands the outcome to the ledger.

There are as many workers as the run's :func:`~engine.sizing.concurrency_ceiling`;
those above the current concurrency park until it rises (or the gate opens). A request
whose outcome the GitHub client already recorded on its lane's breaker is not recorded
again here (``track_outcomes``: one failed request is one failure).

A unit runs inside :func:`~engine.deferral.deferring`: when its request would wait for a
reset or a secondary-limit pause (far away), the client raises
:class:`~engine.deferral.DeferredUntil` and the worker hands the items back to pending
until then (:meth:`Ledger.defer`: no attempt, no failure, neutral to the breaker) and
takes the next unit, so a spent installation's items never hold the pool while another
installation's wait in the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from engine.breaker import BreakerRegistry, track_outcomes
from engine.deferral import DeferredUntil, deferring
from engine.errors import BatchProcessingError, classify
from engine.events import EventKind, EventLog
from engine.models import Item
from engine.processor import BatchProcessor

if TYPE_CHECKING:
    from engine.processor import Processor, RunContext
    from engine.run.control import Lifecycle
    from engine.run.feeder import Batching
    from engine.run.ledger import Ledger
    from engine.sizing import BatchSizer


class WorkerPool:
    """``size`` worker tasks, created once; a worker cancelled at a halt is replaced."""

    def __init__(self, *, size: int, processor: Processor, ctx: RunContext, clock: Callable[[], float],
                 breakers: BreakerRegistry, events: EventLog, lifecycle: Lifecycle, ledger: Ledger,
                 sizer: BatchSizer, batching: Batching, queue: asyncio.Queue[list[Item]]) -> None:
        self.size = size
        self.processor = processor
        self.ctx = ctx
        self.clock = clock
        self.breakers = breakers
        self.events = events
        self.lifecycle = lifecycle
        self.ledger = ledger
        self.sizer = sizer
        self.batching = batching
        self.queue = queue
        self.busy = 0                  # items held by workers now
        self.idle = asyncio.Event()
        self.idle.set()
        self.tasks: list[asyncio.Task] = []
        self._working: dict[int, asyncio.Task] = {}     # worker index -> its task, while it holds a unit

    def start(self) -> None:
        self.tasks = [self._new(i) for i in range(self.size)]

    def _new(self, index: int) -> asyncio.Task:
        return asyncio.create_task(self._worker(index), name=f"batchdeck-worker-{index}")

    async def interrupt_busy(self) -> int:
        """Cancel the workers still holding units (their items go back to pending) and put
        fresh ones in their place. Returns how many were interrupted."""
        stuck = dict(self._working)
        for task in stuck.values():
            task.cancel()
        for index, task in stuck.items():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            if self.tasks[index] is task:
                self.tasks[index] = self._new(index)
        return len(stuck)

    async def _worker(self, index: int) -> None:
        heard = track_outcomes()   # lanes whose breaker the item's own requests fed (see engine.breaker)
        lifecycle = self.lifecycle
        sizer = self.sizer
        while True:
            while index >= sizer.concurrency or not lifecycle.gate.is_set():
                await lifecycle.gate_changed.wait()
            unit = await self.queue.get()
            size = len(unit)
            self.busy += size
            self.idle.clear()
            self._working[index] = cast(asyncio.Task, asyncio.current_task())
            heard.clear()
            try:
                if self.batching.whole(unit[0].lane):
                    await self._run_batch(unit, heard)
                else:
                    await self._run_item(unit[0], heard)
            finally:
                self._working.pop(index, None)
                self.busy -= size
                if self.busy == 0:
                    self.idle.set()

    async def _admit(self, lane: str) -> Any:
        breaker = self.breakers.get(lane)
        permit = breaker.try_acquire()
        if permit is not None:
            return permit
        self.events.emit(EventKind.BREAKER, f"lane {lane} waits for its breaker ({breaker.state.value})")
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
            with deferring():
                result = await self.processor.process(item, self.ctx)
        except asyncio.CancelledError:
            if permit is not None:
                permit.release()
            self.ledger.return_to_pending(item)
            raise
        except DeferredUntil as deferral:
            if permit is not None:
                permit.release()
            self.ledger.defer([item], deferral)
        except Exception as exc:
            duration = (time.perf_counter() - t0) * 1000
            if item.lane in heard:          # its request's outcome is recorded already
                if permit is not None:
                    permit.release()
            else:
                breaker.record_failure(classify(exc), permit)
            self.ledger.failed(item, exc, started, duration)
        else:
            duration = (time.perf_counter() - t0) * 1000
            if item.lane in heard:
                if permit is not None:
                    permit.release()
            else:
                breaker.record_success(permit)
            self.ledger.succeeded(item, result, started, duration)

    async def _run_batch(self, items: list[Item], heard: set[str]) -> None:
        processor = cast(BatchProcessor, self.processor)     # Batching.whole said so
        permit = None
        started = self.clock()
        t0 = time.perf_counter()
        results: list[Any]
        try:
            permit = await self._admit(items[0].lane)
            with deferring():
                results = await processor.process_batch(items, self.ctx)
            if len(results) != len(items):
                raise BatchProcessingError(
                    f"process_batch returned {len(results)} results for {len(items)} items"
                )
        except asyncio.CancelledError:
            if permit is not None:
                permit.release()
            for item in items:
                self.ledger.return_to_pending(item)
            raise
        except DeferredUntil as deferral:
            if permit is not None:
                permit.release()
            self.ledger.defer(items, deferral)
            return
        except Exception as exc:
            results = [exc] * len(items)
        duration = (time.perf_counter() - t0) * 1000 / max(1, len(items))
        errors = [r for r in results if isinstance(r, BaseException) and not isinstance(r, DeferredUntil)]
        if permit is None:
            pass
        elif items[0].lane in heard:        # its requests' outcomes are recorded already
            permit.release()
        elif errors:
            permit.failure(classify(errors[0]))
        else:
            permit.success()
        for item, result in zip(items, results, strict=True):
            if isinstance(result, DeferredUntil):   # this item's owner waits for its reset, not the batch's
                self.ledger.defer([item], result)
            elif isinstance(result, BaseException):
                self.ledger.failed(item, result, started, duration)
            else:
                self.ledger.succeeded(item, result, started, duration)
