"""States and the plain records the engine, the store and the console share.

Everything here is a frozen-ish dataclass or an enum with no behaviour, so the
console can render it and the store can persist it without importing the
runner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RunState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def resumable(self) -> bool:
        return self in (RunState.PAUSED, RunState.INTERRUPTED, RunState.PENDING, RunState.FAILED)

    @property
    def finished(self) -> bool:
        return self in (RunState.COMPLETED, RunState.FAILED, RunState.CANCELLED)


class ItemState(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class BatchState(StrEnum):
    RUNNING = "running"
    DONE = "done"            # every item done or skipped
    PARTIAL = "partial"      # ended with some items failed for good
    FAILED = "failed"        # every item failed for good


@dataclass(slots=True)
class PlannedItem:
    """What a job kind's ``plan`` yields: one unit of work.

    ``key`` is unique within a run (planning twice inserts nothing twice);
    lower ``priority`` runs first; ``lane`` picks the circuit breaker that
    gates the item (``read``, ``write``, ``search``, ``graphql`` or any name).
    """

    key: str
    payload: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    lane: str = "default"


@dataclass(slots=True)
class Item:
    """An item as a worker sees it."""

    id: int
    run_id: int
    seq: int
    key: str
    payload: dict[str, Any]
    priority: int
    lane: str
    attempts: int = 0
    batch_id: int | None = None


@dataclass(slots=True)
class Counts:
    total: int = 0
    pending: int = 0
    in_flight: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped

    def balanced(self) -> bool:
        return self.pending + self.in_flight + self.done + self.failed + self.skipped == self.total


@dataclass(slots=True)
class RunInfo:
    id: int
    kind: str
    state: RunState
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    parent_id: int | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    owner_pid: int | None = None
    heartbeat_at: float | None = None


@dataclass(slots=True)
class BatchView:
    id: int
    run_id: int
    size: int
    state: BatchState
    done: int
    failed: int
    retried: int
    p95_ms: float | None
    started_at: float
    ended_at: float | None = None


@dataclass(slots=True)
class RateLimitGauge:
    """One primary bucket as the client last saw it, and the pace it holds."""

    resource: str            # core, search, graphql, ...
    limit: int
    remaining: int
    used: int
    reset_at: float          # epoch seconds
    pace_per_s: float | None  # the request rate the client currently allows
    buffer: float            # rate_limit_buffer: the share of the bucket the run may spend
    window_s: float | None = None   # how long a window lasts (scaled when the simulator scales time)


@dataclass(slots=True)
class LaneView:
    """A client lane: paused by a secondary limit, and the write budget."""

    name: str
    paused_until: float | None = None
    pause_reason: str | None = None
    content_budget_per_min: float | None = None
    in_flight: int = 0


@dataclass(slots=True)
class BreakerTransition:
    at: float
    from_state: str
    to_state: str
    reason: str


@dataclass(slots=True)
class BreakerView:
    lane: str
    state: str               # closed, open, half_open
    failures: int
    threshold: int
    next_probe_at: float | None
    transitions: list[BreakerTransition] = field(default_factory=list)


@dataclass(slots=True)
class MetricSample:
    """One point of the run's time series (one a second while running)."""

    at: float
    items_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    batch_size: int
    concurrency: int
    errors: dict[str, int] = field(default_factory=dict)   # error class -> count in this interval
    done: int = 0


@dataclass(slots=True)
class PhaseView:
    """Items of one kind (the key's prefix: ``repo``, ``file``): how many exist, how many ended."""

    name: str
    total: int
    finished: int
    spawning: bool = False   # its items add items while they run: the run's total grows until they end


@dataclass(slots=True)
class RunSnapshot:
    """Everything the console shows about one run, at one instant.

    Built in-process from the live engine, or rebuilt from SQLite for a run that
    another process is executing; the panes cannot tell the two apart.
    """

    run: RunInfo
    counts: Counts
    items_per_s: float = 0.0
    eta_s: float | None = None
    concurrency: int = 0
    batch_size: int = 0
    strategy: str = ""
    retries: int = 0
    api_requests: int = 0
    api_requests_saved: int = 0
    errors_by_class: dict[str, int] = field(default_factory=dict)
    rate_limits: list[RateLimitGauge] = field(default_factory=list)
    lanes: list[LaneView] = field(default_factory=list)
    breakers: list[BreakerView] = field(default_factory=list)
    recent_batches: list[BatchView] = field(default_factory=list)
    series: list[MetricSample] = field(default_factory=list)
    taken_at: float = 0.0
    # Progress honesty: while planning, or while items that spawn items are open, the total
    # is a lower bound (no percentage, no ETA); eta_s is None then, when paused or stalled.
    phases: list[PhaseView] = field(default_factory=list)
    total_final: bool = True
    planning: bool = False
    counters: dict[str, int] = field(default_factory=dict)   # the job's counters (findings, blobs_parsed...)

    @property
    def total_known(self) -> bool:
        """Whether ``counts.total`` is final (planning over, nothing left that spawns items)."""
        return self.total_final and not self.planning
