"""The one SQLite writer of a running engine.

Workers, the feeder and job kinds never write to SQLite themselves: they hand
rows to the :class:`Recorder`, which commits them together every
``flush_interval`` seconds or as soon as ``flush_rows`` are waiting. Item
updates are coalesced per item (the last state wins), so an item dispatched,
retried and dispatched again inside one flush is written once, correctly.

After each commit the recorder calls ``on_commit(finished_ids, skipped_spawns)`` so
the feeder knows which items' states are now durable (and may be read back from
SQLite), and the runner how many spawned items were already there (an item
re-run after a crash spawns keys the run has; ``INSERT OR IGNORE`` keeps the
first, and the runner must not count them twice).

A commit the database refuses (disk full, read-only, I/O error) rolls back whole
and is sticky: ``error`` holds the one-line :class:`~engine.errors.InputError`
and every later flush raises it. The runner then stops the run, resumable: what
the lost commit held was not recorded, so those items run again on resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from engine.store import Store
from engine.store_rows import (
    ARTIFACT_INSERT_SQL,
    ATTEMPT_INSERT_SQL,
    BATCH_UPSERT_SQL,
    CHECKPOINT_INSERT_SQL,
    CONTROL_CONSUMED_SQL,
    ITEM_INSERT_SQL,
    ITEM_UPDATE_SQL,
    METRIC_INSERT_SQL,
    RUN_ENDED_SQL,
    RUN_LIVE_SQL,
    RUN_PLANNED_SQL,
    RUN_STATE_SQL,
    ArtifactRow,
    AttemptRow,
    BatchRow,
    CheckpointRow,
    ItemUpdate,
    MetricRow,
    NewItem,
    RunEnded,
    RunLive,
)

log = logging.getLogger("batchdeck.recorder")


class Recorder:
    def __init__(
        self,
        store: Store,
        *,
        flush_interval: float = 0.1,
        flush_rows: int = 2000,
        on_commit: Callable[[list[int], int], None] | None = None,
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.flush_rows = flush_rows
        self.on_commit = on_commit
        self._inserts: list[NewItem] = []
        self._spawns: list[NewItem] = []
        self._item_updates: dict[int, ItemUpdate] = {}
        self._batches: dict[tuple[int, int], BatchRow] = {}
        self._attempts: list[AttemptRow] = []
        self._ops: list[tuple[str, list[Sequence[Any]]]] = []
        self._released: list[int] = []
        self._pending_rows = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self.commits = 0
        self.error: BaseException | None = None

    # -- producers (synchronous: never block a worker) ---------------------------------------
    def insert_items(self, rows: list[NewItem]) -> None:
        """Planned items."""
        self._inserts.extend(rows)
        self._bump(len(rows))

    def spawn_items(self, rows: list[NewItem]) -> None:
        """Items added while the run runs; how many of them already existed is reported to
        ``on_commit``."""
        self._spawns.extend(rows)
        self._bump(len(rows))

    def update_item(self, row: ItemUpdate, *, release: bool) -> None:
        """``release`` once the state is final or requeued (the feeder may read the item again)."""
        self._item_updates[row.id] = row
        if release:
            self._released.append(row.id)
        self._bump(1)

    def upsert_batch(self, row: BatchRow) -> None:
        self._batches[(row.run_id, row.id)] = row
        self._bump(1)

    def add_attempt(self, row: AttemptRow) -> None:
        self._attempts.append(row)
        self._bump(1)

    def add(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Any other statement, kept in order: a job kind's rows (``ctx.write``), caches, and
        the run's own statements below."""
        if self._ops and self._ops[-1][0] == sql:
            self._ops[-1][1].extend(rows)
        else:
            self._ops.append((sql, list(rows)))
        self._bump(len(rows))

    # the run's own rows, in order with the rest
    def add_checkpoint(self, row: CheckpointRow) -> None:
        self.add(CHECKPOINT_INSERT_SQL, [row])

    def add_artifact(self, row: ArtifactRow) -> None:
        self.add(ARTIFACT_INSERT_SQL, [row])

    def add_metric(self, row: MetricRow) -> None:
        self.add(METRIC_INSERT_SQL, [row])

    def set_run_state(self, run_id: int, state: str, message: str | None) -> None:
        self.add(RUN_STATE_SQL, [(state, message, run_id)])

    def mark_planned(self, run_id: int) -> None:
        self.add(RUN_PLANNED_SQL, [(run_id,)])

    def write_live(self, row: RunLive) -> None:
        self.add(RUN_LIVE_SQL, [row])

    def end_run(self, row: RunEnded) -> None:
        self.add(RUN_ENDED_SQL, [row])

    def consume_control(self, control_id: int, at: float) -> None:
        self.add(CONTROL_CONSUMED_SQL, [(at, control_id)])

    def _bump(self, n: int) -> None:
        self._pending_rows += n
        if self._pending_rows >= self.flush_rows:
            self._wake.set()

    @property
    def backlog(self) -> int:
        return self._pending_rows

    # -- the loop ------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="batchdeck-recorder")

    async def _loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # the run cannot go on without its writer
                log.warning("recorder flush failed: %s", exc)
                self.error = exc
                return

    async def flush(self) -> None:
        async with self._lock:
            if self.error is not None:
                raise self.error
            if not self._pending_rows:
                return
            inserts, self._inserts = self._inserts, []
            spawns, self._spawns = self._spawns, []
            updates, self._item_updates = list(self._item_updates.values()), {}
            batches, self._batches = list(self._batches.values()), {}
            attempts, self._attempts = self._attempts, []
            ops, self._ops = self._ops, []
            released, self._released = self._released, []
            self._pending_rows = 0
            statements: list[tuple[str, Sequence[Sequence[Any]]]] = [
                (ITEM_INSERT_SQL, inserts),
                (ITEM_INSERT_SQL, spawns),
                (BATCH_UPSERT_SQL, batches),
                (ITEM_UPDATE_SQL, updates),
                (ATTEMPT_INSERT_SQL, attempts),
                *ops,
            ]
            try:
                changed = await self.store.write_many(statements)
            except Exception as exc:
                self.error = exc
                raise
            self.commits += 1
            skipped_spawns = len(spawns) - changed[1]
        if self.on_commit is not None:
            self.on_commit(released, skipped_spawns)

    async def stop(self) -> None:
        """Flush what is left and end the loop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
