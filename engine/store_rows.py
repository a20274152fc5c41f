"""The engine core's statements and the typed rows they take or give, one definition each.

Every statement the engine core runs on its own tables is defined here, next to the
row that fills it; :class:`~engine.store.Store` (reads, rare writes) and
:class:`~engine.recorder.Recorder` (the run's one writer) execute them, nobody else
builds SQL for these tables. A job kind's own tables stay in its package.

Rows written per item (inserts, state updates, attempts, batches) are
:class:`typing.NamedTuple`: typed and immutable like a frozen dataclass, and a tuple,
so ``executemany`` takes them as they are. A frozen dataclass would cost a conversion
per row on the hot path (measured by ``bench/engine.py``); reads are frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

# -- items ----------------------------------------------------------------------------------
ITEM_INSERT_SQL = (
    "INSERT OR IGNORE INTO items (run_id, seq, key, payload, priority, lane, state) "
    "VALUES (?, ?, ?, ?, ?, ?, 'pending')"
)
ITEM_UPDATE_SQL = (
    "UPDATE items SET state=?, attempts=?, not_before=?, batch_id=?, error_class=?, "
    "last_error=?, result=?, duration_ms=?, updated_at=? WHERE id=?"
)
PENDING_COLUMNS = "id, seq, key, payload, priority, lane, attempts, not_before"
FAILED_COLUMNS = "id, seq, key, payload, priority, lane, attempts, error_class, last_error, batch_id"
#: the HTTP status of each item's last attempt (SQLite takes the bare column from the row of max(id))
LAST_STATUS_SQL = "SELECT item_id, http_status, max(id) FROM attempts WHERE run_id=? GROUP BY item_id"


class NewItem(NamedTuple):
    """A pending item to insert: planned, spawned or copied by a replay (``payload`` is JSON text).
    A key the run has already is ignored (``INSERT OR IGNORE``): planning is idempotent by key."""

    run_id: int
    seq: int
    key: str
    payload: str
    priority: int
    lane: str


class ItemUpdate(NamedTuple):
    """An item's new state (ITEM_UPDATE_SQL); the recorder keeps the last one per ``id``."""

    state: str
    attempts: int
    not_before: float | None
    batch_id: int | None
    error_class: str | None
    last_error: str | None
    result: str | None
    duration_ms: float | None
    updated_at: float
    id: int


class PendingItem(NamedTuple):
    """A page row of the feeder: a pending item in (priority, seq) order."""

    id: int
    seq: int
    key: str
    payload: str
    priority: int
    lane: str
    attempts: int
    not_before: float | None


@dataclass(frozen=True, slots=True)
class FailedItem:
    """A failed item as a replay copies it (``payload`` is the stored JSON text)."""

    id: int
    seq: int
    key: str
    payload: str
    priority: int
    lane: str
    attempts: int
    error_class: str | None
    last_error: str | None
    batch_id: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- attempts, batches ------------------------------------------------------------------------
ATTEMPT_INSERT_SQL = (
    "INSERT INTO attempts (run_id, item_id, batch_id, started_at, duration_ms, outcome, error_class, "
    "http_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


class AttemptRow(NamedTuple):
    """One try of an item: ``outcome`` is ok, retry, failed or fatal."""

    run_id: int
    item_id: int
    batch_id: int | None
    started_at: float
    duration_ms: float
    outcome: str
    error_class: str | None
    http_status: int | None


BATCH_UPSERT_SQL = (
    "INSERT OR REPLACE INTO batches (run_id, id, size, lane, state, done, failed, retried, p95_ms, "
    "started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class BatchRow(NamedTuple):
    """A batch as stored when it opens and when it ends (the recorder keeps the last per batch)."""

    run_id: int
    id: int
    size: int
    lane: str
    state: str
    done: int
    failed: int
    retried: int
    p95_ms: float | None
    started_at: float
    ended_at: float | None


# -- checkpoints, artifacts, metrics -------------------------------------------------------------
CHECKPOINT_INSERT_SQL = "INSERT INTO checkpoints (run_id, created_at, reason, counts, data) VALUES (?, ?, ?, ?, ?)"


class CheckpointRow(NamedTuple):
    run_id: int
    created_at: float
    reason: str
    counts: str         # JSON
    data: str           # JSON


ARTIFACT_INSERT_SQL = (
    "INSERT INTO artifacts (run_id, batch_id, kind, created_at, summary, data) VALUES (?, ?, ?, ?, ?, ?)"
)


class ArtifactRow(NamedTuple):
    """An artifact: ``task_graph``, a failed batch's ``replay``, the run's ``report``."""

    run_id: int
    batch_id: int | None
    kind: str
    created_at: float
    summary: str
    data: str           # JSON


METRIC_INSERT_SQL = "INSERT INTO metrics (run_id, at, sample) VALUES (?, ?, ?)"


class MetricRow(NamedTuple):
    run_id: int
    at: float
    sample: str         # JSON of a MetricSample


# -- the run row ---------------------------------------------------------------------------------
RUN_STARTED_SQL = (
    "UPDATE runs SET state='running', started_at=coalesce(started_at, ?), heartbeat_at=?, owner_pid=?, "
    "owner_host=?, message=NULL, finished_at=NULL WHERE id=?"
)
RUN_STATE_SQL = "UPDATE runs SET state=?, message=? WHERE id=?"
RUN_UNOWNED_SQL = "UPDATE runs SET state=?, message=?, owner_pid=NULL WHERE id=?"
RUN_PLANNED_SQL = "UPDATE runs SET planned=1 WHERE id=?"
RUN_LIVE_SQL = "UPDATE runs SET heartbeat_at=?, live=?, stats=?, active_s=? WHERE id=?"
RUN_ENDED_SQL = (
    "UPDATE runs SET state=?, message=?, finished_at=?, owner_pid=?, heartbeat_at=?, active_s=? WHERE id=?"
)


class RunLive(NamedTuple):
    """The owner's heartbeat: what another process rebuilds the snapshot from (JSON texts)."""

    heartbeat_at: float
    live: str
    stats: str
    active_s: float
    id: int


class RunEnded(NamedTuple):
    """The run row when this process lets the run go (``finished_at`` None: resumable)."""

    state: str
    message: str | None
    finished_at: float | None
    owner_pid: int | None
    heartbeat_at: float
    active_s: float
    id: int


# -- control ---------------------------------------------------------------------------------------
CONTROL_INSERT_SQL = "INSERT INTO control (run_id, command, arg, created_at) VALUES (?, ?, ?, ?)"
CONTROL_PENDING_SQL = "SELECT id, command, arg FROM control WHERE run_id=? AND consumed_at IS NULL ORDER BY id"
CONTROL_CONSUMED_SQL = "UPDATE control SET consumed_at=? WHERE id=?"


@dataclass(frozen=True, slots=True)
class ControlRow:
    """A command sent through the control table, not consumed yet. ``command`` is the stored text:
    :class:`~engine.events.ControlCommand` parses it (a newer batchdeck may send one this one lacks)."""

    id: int
    command: str
    arg: str | None


__all__ = [
    "ARTIFACT_INSERT_SQL", "ATTEMPT_INSERT_SQL", "BATCH_UPSERT_SQL", "CHECKPOINT_INSERT_SQL", "CONTROL_CONSUMED_SQL",
    "CONTROL_INSERT_SQL", "CONTROL_PENDING_SQL", "FAILED_COLUMNS", "ITEM_INSERT_SQL", "ITEM_UPDATE_SQL",
    "LAST_STATUS_SQL", "METRIC_INSERT_SQL", "PENDING_COLUMNS", "RUN_ENDED_SQL", "RUN_LIVE_SQL", "RUN_PLANNED_SQL",
    "RUN_STARTED_SQL", "RUN_STATE_SQL", "RUN_UNOWNED_SQL", "ArtifactRow", "AttemptRow", "BatchRow",
    "CheckpointRow", "ControlRow", "FailedItem", "ItemUpdate", "MetricRow", "NewItem", "PendingItem", "RunEnded",
    "RunLive",
]


@dataclass(frozen=True, slots=True)
class ReportFigures:
    """What the run report reads from the engine's tables, in one place (engine.metrics)."""

    timed_items: int                      # done items with a duration
    busy_ms: float                        # their durations plus every failed attempt's
    errors_by_class: dict[str, int]       # failed attempts, by class
    failed_by_class: dict[str, int]       # failed items, by class
    batches: int
    batch_mean: float
    batch_min: int | None
    batch_max: int | None
    concurrency_samples: list[float]
    checkpoints: int
    replay_artifacts: int
