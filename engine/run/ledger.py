"""The ledger of a run: every item's state, the counts, the batches, the checkpoints.

Every state change of an item goes through here, and from here to the recorder (the one
writer), so the counts in memory and the rows in SQLite move together. Invariant
(tested): ``pending + in_flight + done + failed + skipped == total`` at every commit.

A batch opens when the feeder hands its items out and ends when its last item left
(done, failed, retried or returned to pending); its end feeds the sizer and, when some
of its items failed, stores a replay artifact. A failed try that may be retried puts
the item back to pending with a ``not_before`` and into the feeder's
:class:`~engine.run.feeder.RetryWaits`: a retry never holds a worker. A deferred item (its
request would wait for a reset or a pause: :mod:`engine.deferral`) takes the same path
without counting an attempt: it never ran.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import ErrorClass, classify
from engine.events import EventKind, EventLog
from engine.models import BatchState, BatchView, Counts, Item, ItemState, PlannedItem, RunState
from engine.run.telemetry import RunStats, dumps
from engine.sizing import BatchOutcome
from engine.store_rows import ArtifactRow, AttemptRow, BatchRow, CheckpointRow, ItemUpdate, NewItem

if TYPE_CHECKING:
    from engine.breaker import BreakerRegistry
    from engine.config import AppConfig
    from engine.deferral import DeferredUntil
    from engine.phases import PhaseCounter
    from engine.recorder import Recorder
    from engine.retry import RetryPlanner
    from engine.run.control import Lifecycle
    from engine.run.feeder import RetryWaits
    from engine.sizing import BatchSizer
    from engine.store import Store

log = logging.getLogger("batchdeck.runner")

RECENT_BATCHES = 200

#: ``_row(ItemUpdate, (...))`` builds the typed row at a third of ``ItemUpdate(...)``'s cost (a
#: NamedTuple's ``__new__`` is a Python call): twice per item on the hot path
_row = tuple.__new__

_DONE = ItemState.DONE.value
_PENDING = ItemState.PENDING.value
_FAILED = ItemState.FAILED.value
_IN_FLIGHT = ItemState.IN_FLIGHT.value


@dataclass(slots=True)
class OpenBatch:
    """A batch whose items are not all back yet."""

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

    def row(self, run_id: int, state: BatchState, p95_ms: float | None, ended_at: float | None) -> BatchRow:
        return BatchRow(run_id, self.id, self.size, self.lane, state.value, self.done, self.failed, self.retried,
                        p95_ms, self.started_at, ended_at)


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3)


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:500]


class Ledger:
    """Item states, counts, batches, spawned items, checkpoints and replay artifacts of one run."""

    def __init__(self, *, run_id: int, config: AppConfig, clock: Callable[[], float], recorder: Recorder,
                 events: EventLog, lifecycle: Lifecycle, stats: RunStats, waits: RetryWaits, sizer: BatchSizer,
                 retry: RetryPlanner, breakers: BreakerRegistry, phases: PhaseCounter,
                 headroom: Callable[[], float | None]) -> None:
        self.run_id = run_id
        self.config = config
        self.clock = clock
        self.recorder = recorder
        self.events = events
        self.lifecycle = lifecycle
        self.stats = stats
        self.waits = waits
        self.sizer = sizer
        self.retry = retry
        self.breakers = breakers
        self.phases = phases
        self.headroom = headroom
        self.counts = Counts()
        self.batches: dict[int, OpenBatch] = {}
        self.recent: deque[BatchView] = deque(maxlen=RECENT_BATCHES)
        #: items handed out whose release (done, failed, requeued) is not committed yet
        self.dispatched: set[int] = set()
        self.next_seq = 0
        self.next_batch = 0
        self._rewind: tuple[int, int] | None = None
        self._next_checkpoint = config.batch.checkpoint_interval
        # A first try that succeeds is fully described by its item row (state, batch,
        # duration_ms); attempts rows record every try only when log_batch_metrics asks
        # for it, and every failed try always. This halves the rows a run writes.
        self._record_ok_attempts = config.batch.log_batch_metrics
        self._deferred_for: str | None = None       # the last deferral announced (see defer)
        self._deferred_until = 0.0

    async def load(self, store: Store) -> None:
        """Counts and numbering from SQLite (a new run, a resume, or after planning)."""
        self.counts = await store.counts(self.run_id)
        self.next_seq = await store.max_seq(self.run_id)
        self.next_batch = await store.max_batch_id(self.run_id)

    # -- items in ---------------------------------------------------------------------------------
    def new_item(self, planned: PlannedItem) -> NewItem:
        """The row of a planned or spawned item, numbered next."""
        self.next_seq += 1
        return NewItem(self.run_id, self.next_seq, planned.key, dumps(planned.payload), planned.priority,
                       planned.lane)

    def spawn(self, planned: PlannedItem) -> None:
        """A follow-up item added while the run runs (``ctx.spawn``)."""
        row = self.new_item(planned)
        self.recorder.spawn_items([row])
        self.counts.total += 1
        self.counts.pending += 1
        self.phases.add(planned.key, spawned=True)
        mark = (planned.priority, row.seq - 1)
        if self._rewind is None or mark < self._rewind:
            self._rewind = mark

    def take_rewind(self) -> tuple[int, int] | None:
        """Where the feeder must read again from: a spawned item sorts before its cursor."""
        mark, self._rewind = self._rewind, None
        return mark

    def on_commit(self, released: list[int], skipped_spawns: int) -> None:
        if skipped_spawns:      # keys the run already had (re-run after a crash): counted once
            self.counts.total -= skipped_spawns
            self.counts.pending -= skipped_spawns
            self.check_complete()
        if released:
            self.dispatched.difference_update(released)

    # -- batches ----------------------------------------------------------------------------------
    def open_batch(self, items: list[Item]) -> OpenBatch:
        self.next_batch += 1
        now = self.clock()
        batch = OpenBatch(self.next_batch, len(items), items[0].lane, now, len(items))
        self.batches[batch.id] = batch
        self.recorder.upsert_batch(batch.row(self.run_id, BatchState.RUNNING, None, None))
        for item in items:
            item.batch_id = batch.id
            self.dispatched.add(item.id)
            self.recorder.update_item(
                _row(ItemUpdate, (_IN_FLIGHT, item.attempts, None, batch.id, None, None, None, None, now, item.id)),
                release=False,
            )
        n = len(items)
        self.counts.pending -= n
        self.counts.in_flight += n
        self.events.emit(EventKind.BATCH_STARTED, f"batch {batch.id}: {n} items", batch=batch.id)
        return batch

    def _item_left(self, batch: OpenBatch) -> None:
        batch.remaining -= 1
        if batch.remaining == 0:
            self._end_batch(batch)

    def _end_batch(self, batch: OpenBatch) -> None:
        del self.batches[batch.id]
        now = self.clock()
        if batch.failed and batch.done:
            state = BatchState.PARTIAL
        elif batch.failed:
            state = BatchState.FAILED
        else:
            state = BatchState.DONE
        view = batch.view(self.run_id, state, now)
        self.recent.append(view)
        self.recorder.upsert_batch(batch.row(self.run_id, state, view.p95_ms, now))
        if batch.size:      # every item deferred or halted: nothing ran, nothing to learn from
            self.sizer.on_batch_end(BatchOutcome(
                size=batch.size, succeeded=batch.done, failed=batch.failed + batch.retried,
                errors=dict(batch.errors), p95_ms=view.p95_ms, headroom=self.headroom(),
                breaker_open=self.breakers.any_not_closed(), memory_pressure=self.stats.memory_pressure,
            ))
        self.lifecycle.pulse()
        self.events.emit(EventKind.BATCH_ENDED, f"batch {batch.id} {state.value}: {batch.done} done, "
                                                f"{batch.failed} failed, {batch.retried} retried", batch=batch.id)
        if batch.failed:
            self._replay_artifact(batch)

    def _replay_artifact(self, batch: OpenBatch) -> None:
        errors = {k.value: v for k, v in batch.errors.items()}
        data = {
            "batch_id": batch.id, "failed": batch.failed, "errors_by_class": errors,
            "config": self.config.to_dict(), "recommendation": recommend(errors),
            "items_query": {"run_id": self.run_id, "batch_id": batch.id, "state": "failed"},
        }
        summary = f"batch {batch.id}: {batch.failed} failed ({', '.join(sorted(errors)) or 'unknown'})"
        self.recorder.add_artifact(ArtifactRow(self.run_id, batch.id, "replay", self.clock(), summary, dumps(data)))
        self.events.emit(EventKind.ARTIFACT, f"replay artifact for batch {batch.id}", batch=batch.id)

    # -- items out --------------------------------------------------------------------------------------
    def return_to_pending(self, item: Item) -> None:
        """An item handed out but not run (a halt, a cancelled worker): pending again, as it was."""
        self.recorder.update_item(
            ItemUpdate(_PENDING, item.attempts, None, None, None, None, None, None, self.clock(), item.id),
            release=True,
        )
        self.counts.in_flight -= 1
        self.counts.pending += 1
        batch = self.batches.get(item.batch_id or -1)
        if batch is not None:
            batch.size -= 1
            self._item_left(batch)

    def defer(self, items: list[Item], deferral: DeferredUntil) -> None:
        """Items whose request must wait ``deferral.delay_s`` (a spent budget's reset, a
        secondary-limit pause): pending again with ``not_before`` then, their attempts and
        errors as they were (a deferral is neither), out of their batch like a halted item."""
        now = self.clock()
        not_before = now + deferral.delay_s
        for item in items:
            self.recorder.update_item(
                ItemUpdate(_PENDING, item.attempts, not_before, None, None, None, None, None, now, item.id),
                release=True,
            )
            self.counts.in_flight -= 1
            self.counts.pending += 1
            self.waits.schedule(item, not_before)
            batch = self.batches.get(item.batch_id or -1)
            if batch is not None:
                batch.size -= 1
                self._item_left(batch)
        self.stats.deferrals += len(items)
        if deferral.what != self._deferred_for or not_before > self._deferred_until + 1.0:
            # once per wait, not per item: the items of one spent bucket follow each other
            self._deferred_for, self._deferred_until = deferral.what, not_before
            self.events.emit(EventKind.DEFERRED, f"{deferral.what}: items wait {deferral.delay_s:.1f}s "
                                                 "without holding a worker")

    def succeeded(self, item: Item, result: Any, started: float, duration_ms: float) -> None:
        # the hot path of every run: plain locals and string states, no clock call
        batch_id = item.batch_id
        self.recorder.update_item(
            _row(ItemUpdate, (_DONE, item.attempts, None, batch_id, None, None,
                              None if result is None else dumps(result), duration_ms, started + duration_ms / 1000,
                              item.id)),
            release=True,
        )
        if self._record_ok_attempts:
            self.recorder.add_attempt(AttemptRow(self.run_id, item.id, batch_id, started, duration_ms, "ok", None,
                                                 None))
        counts = self.counts
        counts.in_flight -= 1
        counts.done += 1
        self.phases.finish(item.key)
        self.stats.latency.add(duration_ms)
        batch = self.batches.get(batch_id)  # type: ignore[arg-type]
        if batch is not None:
            batch.done += 1
            batch.latencies.append(duration_ms)
            batch.remaining -= 1
            if batch.remaining == 0:
                self._end_batch(batch)
        if counts.done + counts.failed + counts.skipped >= self._next_checkpoint or (
                counts.pending == 0 and counts.in_flight == 0):
            self._after_finish()

    def failed(self, item: Item, exc: BaseException, started: float, duration_ms: float) -> None:
        now = self.clock()
        error_class = classify(exc)
        message = _short(exc)
        status = getattr(exc, "status_code", None)
        self.stats.error(error_class.value)
        batch = self.batches.get(item.batch_id or -1)
        if batch is not None:
            batch.errors[error_class] = batch.errors.get(error_class, 0) + 1
        if getattr(exc, "fatal", False):
            # The item is not at fault (a revoked token, say): keep it for the resume.
            self.recorder.add_attempt(AttemptRow(self.run_id, item.id, item.batch_id, started, duration_ms, "fatal",
                                                 error_class.value, status))
            self.return_to_pending(item)
            self.events.emit(EventKind.ERROR, f"fatal {error_class.value} error: {message}")
            self.lifecycle.finish(RunState.FAILED, message)
            return
        decision = self.retry.decide(exc, item.attempts)
        if decision.retry:
            item.attempts += 1
            not_before = now + decision.delay
            self.recorder.update_item(
                ItemUpdate(_PENDING, item.attempts, not_before, item.batch_id, error_class.value, message, None,
                           duration_ms, now, item.id),
                release=True,
            )
            self.recorder.add_attempt(AttemptRow(self.run_id, item.id, item.batch_id, started, duration_ms, "retry",
                                                 error_class.value, status))
            self.stats.retries += 1
            self.counts.in_flight -= 1
            self.counts.pending += 1
            self.waits.schedule(item, not_before)
            if batch is not None:
                batch.retried += 1
                self._item_left(batch)
            return
        self.recorder.update_item(
            ItemUpdate(_FAILED, item.attempts, None, item.batch_id, error_class.value, message, None, duration_ms,
                       now, item.id),
            release=True,
        )
        self.recorder.add_attempt(AttemptRow(self.run_id, item.id, item.batch_id, started, duration_ms, "failed",
                                             error_class.value, status))
        self.counts.in_flight -= 1
        self.counts.failed += 1
        self.phases.finish(item.key)
        if batch is not None:
            batch.failed += 1
            self._item_left(batch)
        self._after_finish()

    # -- checkpoints, completion --------------------------------------------------------------------------
    def _after_finish(self) -> None:
        if self.counts.finished >= self._next_checkpoint:
            self.checkpoint("interval")
            interval = self.config.batch.checkpoint_interval
            self._next_checkpoint = (self.counts.finished // interval + 1) * interval
        self.check_complete()

    def check_complete(self) -> None:
        self.lifecycle.check_complete(self.counts.pending, self.counts.in_flight)

    def checkpoint(self, reason: str) -> None:
        c = self.counts
        counts = {"total": c.total, "pending": c.pending, "in_flight": c.in_flight, "done": c.done,
                  "failed": c.failed, "skipped": c.skipped}
        data = {"batch_size": self.sizer.batch_size, "concurrency": self.sizer.concurrency,
                "strategy": str(self.sizer.strategy), "retries": self.stats.retries, "next_batch": self.next_batch + 1}
        self.recorder.add_checkpoint(CheckpointRow(self.run_id, self.clock(), reason, dumps(counts), dumps(data)))
        self.events.emit(EventKind.CHECKPOINT, f"checkpoint ({reason}) at {c.finished}/{c.total}")


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
