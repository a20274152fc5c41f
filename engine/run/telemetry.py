"""What a run measures about itself, and the snapshot observers read.

:class:`RunStats` is what outcomes add to (latencies, errors by class, retries, memory
pressure); the ledger writes it, the sizer's inputs and the snapshot read it.
:class:`Gauges` reads the run's GitHub client, when it has one (rate limits, lanes,
headroom). :class:`Telemetry` samples once a second (throughput, p50/p95, the metric
series), checks memory against ``max_memory_usage_mb``, writes the ``live`` JSON another
process rebuilds the snapshot from, and builds :class:`~engine.models.RunSnapshot`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import orjson
import psutil

from engine.events import EventKind, EventLog
from engine.metrics import LatencyWindow
from engine.models import (
    BatchState,
    Counts,
    LaneView,
    MetricSample,
    RateLimitGauge,
    RunInfo,
    RunSnapshot,
    RunState,
)
from engine.store_rows import MetricRow, RunLive

if TYPE_CHECKING:
    from engine.breaker import BreakerRegistry
    from engine.config import AppConfig
    from engine.phases import PhaseCounter
    from engine.processor import RunContext
    from engine.recorder import Recorder
    from engine.run.control import Lifecycle
    from engine.run.ledger import Ledger
    from engine.sizing import BatchSizer

SERIES_LEN = 600
STALL_SAMPLES = 5         # one-second samples with nothing finished: the throughput is zero


def dumps(value: Any) -> str:
    """JSON text for SQLite; orjson because the planner and the ledger do this per item."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


@dataclass(slots=True)
class RunStats:
    """Outcome statistics of this run (``errors_by_class`` and ``retries`` persist in ``runs.stats``)."""

    latency: LatencyWindow = field(default_factory=LatencyWindow)
    interval_errors: dict[str, int] = field(default_factory=dict)    # since the last sample
    errors_by_class: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    deferrals: int = 0          # items handed back to wait for a reset or a pause (engine.deferral)
    memory_pressure: bool = False

    def error(self, error_class: str) -> None:
        self.errors_by_class[error_class] = self.errors_by_class.get(error_class, 0) + 1
        self.interval_errors[error_class] = self.interval_errors.get(error_class, 0) + 1


@runtime_checkable
class ReportsLimits(Protocol):
    """A client that reports its rate-limit buckets and lanes (GitHubClient, OwnerRouter)."""

    def rate_limits(self) -> list[RateLimitGauge]: ...

    def lanes(self) -> list[LaneView]: ...


class Gauges:
    """The run's client's gauges; empty for a run without one."""

    def __init__(self) -> None:
        self.client: ReportsLimits | None = None

    def use(self, client: object) -> None:
        self.client = client if isinstance(client, ReportsLimits) else None

    def rate_limits(self) -> list[RateLimitGauge]:
        return self.client.rate_limits() if self.client is not None else []

    def lanes(self) -> list[LaneView]:
        return self.client.lanes() if self.client is not None else []

    def headroom(self) -> float | None:
        """The emptiest bucket's share left (the sizer grows only with headroom)."""
        gauges = [g for g in self.rate_limits() if g.limit]
        return min((g.remaining / g.limit for g in gauges), default=None)


class Telemetry:
    """Samples, memory, the live row and the snapshot of one run."""

    def __init__(self, *, run: RunInfo, config: AppConfig, clock: Callable[[], float], recorder: Recorder,
                 events: EventLog, stats: RunStats, gauges: Gauges, ledger: Ledger, lifecycle: Lifecycle,
                 sizer: BatchSizer, breakers: BreakerRegistry, phases: PhaseCounter, ctx: RunContext) -> None:
        self.run = run
        self.config = config
        self.clock = clock
        self.recorder = recorder
        self.events = events
        self.stats = stats
        self.gauges = gauges
        self.ledger = ledger
        self.lifecycle = lifecycle
        self.sizer = sizer
        self.breakers = breakers
        self.phases = phases
        self.ctx = ctx
        self.series: deque[MetricSample] = deque(maxlen=SERIES_LEN)
        self.rate = 0.0
        self.last_tick = (0.0, 0)
        self.idle_samples = 0
        self.process = psutil.Process()

    # -- once a second -------------------------------------------------------------------------
    def sample(self) -> None:
        now = self.clock()
        last_at, last_done = self.last_tick
        finished = self.ledger.counts.finished
        if last_at:
            dt = max(1e-6, now - last_at)
            instant = (finished - last_done) / dt
            self.rate = instant if not self.rate else 0.5 * self.rate + 0.5 * instant
            # An average that only halves never reaches zero: after a few seconds with nothing
            # finished the throughput is zero, not a shrinking number feeding a 60-digit ETA.
            self.idle_samples = self.idle_samples + 1 if finished == last_done else 0
            if self.idle_samples >= STALL_SAMPLES:
                self.rate = 0.0
        self.last_tick = (now, finished)
        p50, p95 = self.stats.latency.take()
        sample = MetricSample(
            at=now, items_per_s=round(self.rate, 3), p50_ms=p50, p95_ms=p95, batch_size=self.sizer.batch_size,
            concurrency=self.sizer.concurrency, errors=self.stats.interval_errors, done=finished,
        )
        self.stats.interval_errors = {}
        self.series.append(sample)
        if self.config.batch.enable_performance_monitoring:
            self.recorder.add_metric(MetricRow(self.run.id, now, dumps(sample)))

    def check_memory(self) -> None:
        """max_memory_usage_mb (the seed's ResourceManager): above it, the sizer shrinks
        batches and concurrency until the process is back under the line."""
        rss_mb = self.process.memory_info().rss / 2**20
        pressure = rss_mb > self.config.batch.max_memory_usage_mb
        if pressure and not self.stats.memory_pressure:
            self.events.emit(EventKind.MEMORY, f"RSS {rss_mb:.0f} MB is above max_memory_usage_mb "
                                               f"{self.config.batch.max_memory_usage_mb}: shrinking batches")
        self.stats.memory_pressure = pressure

    # -- the live row (twice a second) ---------------------------------------------------------------
    def live(self) -> dict[str, Any]:
        """What another process needs to rebuild the snapshot (orjson writes the dataclasses)."""
        snap = self.snapshot_parts()
        return {
            "concurrency": snap["concurrency"], "batch_size": snap["batch_size"], "strategy": snap["strategy"],
            "items_per_s": snap["items_per_s"], "eta_s": snap["eta_s"], "rate_limits": snap["rate_limits"],
            "lanes": snap["lanes"], "breakers": snap["breakers"], "in_flight_batches": snap["active_batches"],
            "counts": self.ledger.counts, "phases": snap["phases"], "total_final": snap["total_final"],
            "planning": self.lifecycle.planning,
        }

    def persisted_stats(self) -> dict[str, Any]:
        return {"counters": dict(self.ctx.counters), "retries": self.stats.retries,
                "deferrals": self.stats.deferrals, "errors_by_class": dict(self.stats.errors_by_class)}

    def write_live(self) -> None:
        self.recorder.write_live(RunLive(self.clock(), dumps(self.live()), dumps(self.persisted_stats()),
                                         self.lifecycle.active_seconds(), self.run.id))

    # -- the snapshot ---------------------------------------------------------------------------------
    def snapshot_parts(self) -> dict[str, Any]:
        counts = self.ledger.counts
        remaining = counts.pending + counts.in_flight
        total_final = self.phases.total_final(self.lifecycle.planning)
        # No ETA against a total that is still growing, while paused, or with nothing finishing.
        eta = remaining / self.rate if self.rate > 0 and total_final and self.lifecycle.state is RunState.RUNNING \
            else None
        return {
            "concurrency": self.sizer.concurrency, "batch_size": self.sizer.batch_size,
            "strategy": str(getattr(self.sizer.strategy, "value", self.sizer.strategy)),
            "items_per_s": round(self.rate, 3), "eta_s": eta, "rate_limits": self.gauges.rate_limits(),
            "lanes": self.gauges.lanes(), "breakers": self.breakers.views(),
            "active_batches": [b.view(self.run.id, BatchState.RUNNING, None)
                               for b in list(self.ledger.batches.values())[-50:]],
            "now": self.clock(), "phases": self.phases.views(), "total_final": total_final,
        }

    def snapshot(self) -> RunSnapshot:
        parts = self.snapshot_parts()
        c = self.ledger.counts
        counts = Counts(c.total, c.pending, c.in_flight, c.done, c.failed, c.skipped)
        batches = list(parts["active_batches"]) + list(reversed(self.ledger.recent))
        counters = self.ctx.counters
        return RunSnapshot(
            run=self.run, counts=counts, items_per_s=parts["items_per_s"], eta_s=parts["eta_s"],
            concurrency=parts["concurrency"], batch_size=parts["batch_size"], strategy=parts["strategy"],
            retries=self.stats.retries, api_requests=counters.get("api_requests", 0),
            api_requests_saved=counters.get("api_requests_saved", 0),
            errors_by_class=dict(self.stats.errors_by_class), rate_limits=list(parts["rate_limits"]),
            lanes=list(parts["lanes"]), breakers=parts["breakers"], recent_batches=batches,
            series=list(self.series)[-300:], taken_at=parts["now"],
            phases=parts["phases"], total_final=parts["total_final"], planning=self.lifecycle.planning,
            counters=dict(counters),
        )
