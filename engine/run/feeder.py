"""The feeder: pending items from SQLite, cut into batches, onto the workers' bounded queue.

It keyset-reads pending items in (priority, seq) order a page at a time (reading the
next page while this one is dispatched), cuts them into batches of the size the
:class:`~engine.sizing.BatchSizer` (or the kind, :class:`~engine.processor.SizesItsBatches`)
chose and puts them on the bounded queue; ``put`` blocking while the workers are busy is
the back-pressure. Nothing here creates a task per item.

A page is read from the reader connection and may predate the recorder's latest
commits: items those commits released (done, or requeued and waiting in
:class:`RetryWaits`) can still show as pending in it. :meth:`Feeder._stale_ids` names
them from a short log of releases by commit; a page older than that log is read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from engine.models import Item
from engine.processor import BatchProcessor, SizesItsBatches

if TYPE_CHECKING:
    from engine.processor import Processor
    from engine.run.control import Lifecycle
    from engine.run.ledger import Ledger
    from engine.sizing import BatchSizer
    from engine.store import Store
    from engine.store_rows import PendingItem

FEED_PAGE = 2048
RELEASE_LOG = 256       # commits whose released ids a page may be checked against


@dataclass(frozen=True, slots=True)
class Batching:
    """How the kind takes its items: ``process`` one by one, or ``process_batch`` whole
    batches on ``lanes`` (empty: every lane); and whether it sizes its own batches."""

    by_batch: bool
    lanes: frozenset[str]
    sizes: SizesItsBatches | None

    @classmethod
    def of(cls, processor: Processor) -> Batching:
        by_batch = isinstance(processor, BatchProcessor)
        lanes = frozenset(processor.batch_lanes) if isinstance(processor, BatchProcessor) else frozenset()
        return cls(by_batch, lanes, processor if isinstance(processor, SizesItsBatches) else None)

    def whole(self, lane: str) -> bool:
        """Does this lane go to ``process_batch`` as whole batches?"""
        return self.by_batch and (not self.lanes or lane in self.lanes)


class RetryWaits:
    """Items waiting out a retry delay, or deferred until a reset or a pause ends
    (:mod:`engine.deferral`): in memory (and pending in SQLite with their ``not_before``, so
    a crash loses nothing) until due; the feeder dispatches them then, and meanwhile feeds
    the items that can run. Neither a retry nor a deferred item holds a worker."""

    def __init__(self) -> None:
        self.items: dict[int, Item] = {}
        self._heap: list[tuple[float, int, int]] = []

    def __contains__(self, item_id: int) -> bool:
        return item_id in self.items

    def schedule(self, item: Item, not_before: float) -> None:
        self.items[item.id] = item
        heapq.heappush(self._heap, (not_before, item.seq, item.id))

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def due(self, now: float, dispatched: set[int]) -> list[Item]:
        ready: list[Item] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, item_id = heapq.heappop(heap)
            item = self.items.get(item_id)
            if item is None:
                continue
            if item_id in dispatched:      # its requeue is not committed yet: try again shortly
                heapq.heappush(heap, (now + 0.05, item.seq, item_id))
                break
            del self.items[item_id]
            ready.append(item)
        return ready


class Feeder:
    """Reads pending items and puts batches of them on the queue while the gate is open."""

    def __init__(self, *, store: Store, run_id: int, clock: Callable[[], float], lifecycle: Lifecycle,
                 ledger: Ledger, waits: RetryWaits, sizer: BatchSizer, batching: Batching,
                 queue: asyncio.Queue[list[Item]]) -> None:
        self.store = store
        self.run_id = run_id
        self.clock = clock
        self.lifecycle = lifecycle
        self.ledger = ledger
        self.waits = waits
        self.sizer = sizer
        self.batching = batching
        self.queue = queue
        self.enabled = False            # the workers exist: feeding may start
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        # ids released by recent commits, for pages read before those commits (see _stale_ids)
        self._commit_epoch = 0
        self._released_log: deque[tuple[int, list[int]]] = deque(maxlen=RELEASE_LOG)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if self.enabled and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._feed(), name="batchdeck-feeder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def drain_queue(self) -> None:
        """Queued units no worker took: their items go back to pending."""
        while not self.queue.empty():
            for item in self.queue.get_nowait():
                self.ledger.return_to_pending(item)

    def on_commit(self, released: list[int]) -> None:
        self._commit_epoch += 1
        if released:
            self._released_log.append((self._commit_epoch, released))
        self._wake.set()

    # -- reading --------------------------------------------------------------------------------
    async def _read_page(self, cursor: tuple[int, int] | None) -> tuple[list[PendingItem], int]:
        """A page of pending rows and the commit epoch it was read at (see :meth:`_stale_ids`)."""
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

    async def _feed(self) -> None:
        cursor: tuple[int, int] | None = None
        prefetch: asyncio.Future | None = None
        prefetch_from: tuple[int, int] | None = None
        gate = self.lifecycle.gate
        dispatched = self.ledger.dispatched
        waits = self.waits
        try:
            while gate.is_set():
                rewind = self.ledger.take_rewind()
                if rewind is not None and cursor is not None and rewind < cursor:
                    cursor = rewind
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
                    prefetch_from = (rows[-1].priority, rows[-1].seq)
                    prefetch = asyncio.ensure_future(self._read_page(prefetch_from))
                now = self.clock()
                ready: list[Item] = []
                run_id = self.run_id
                for item_id, seq, key, payload, priority, lane, attempts, not_before in rows:
                    cursor = (priority, seq)
                    if item_id in dispatched or item_id in waits.items or item_id in stale:
                        continue
                    item = Item(item_id, run_id, seq, key, orjson.loads(payload), priority, lane, attempts)
                    if not_before is not None and not_before > now:
                        waits.schedule(item, not_before)
                        continue
                    ready.append(item)
                # due retries last: the page above skipped them (they are still waiting)
                ready.extend(waits.due(now, dispatched))
                if ready:
                    await self._dispatch(ready)
                if len(rows) < FEED_PAGE:
                    cursor = None
                    if not ready:
                        timeout = 1.0
                        due = waits.next_due()
                        if due is not None:
                            timeout = min(timeout, max(0.0, due - self.clock()))
                        self._wake.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            if prefetch is not None:
                prefetch.cancel()

    # -- dispatching ------------------------------------------------------------------------------
    async def _dispatch(self, items: list[Item]) -> None:
        size = self.sizer.batch_size
        if self.batching.sizes is not None:    # ...and is the size shown and sampled
            size = self.sizer.batch_size = max(1, int(self.batching.sizes.next_batch_size(size)))
        by_batch = self.batching.by_batch
        start = 0
        while start < len(items):
            chunk = items[start:start + size]
            start += size
            if not by_batch:
                groups = [chunk]
            else:
                by_lane: dict[str, list[Item]] = {}
                for item in chunk:
                    by_lane.setdefault(item.lane, []).append(item)
                groups = list(by_lane.values())
            for group in groups:
                self.ledger.open_batch(group)
                units = [group] if self.batching.whole(group[0].lane) else [[item] for item in group]
                put = 0
                try:
                    for unit in units:
                        await self.queue.put(unit)
                        put += 1
                except asyncio.CancelledError:
                    for unit in units[put:]:
                        for item in unit:
                            self.ledger.return_to_pending(item)
                    raise   # items[start:] were never claimed: still pending, nothing to undo
