"""Batch size and concurrency: what each strategy means, and how adaptive adapts.

Each :class:`~engine.config.BatchStrategy` is a :class:`StrategyPreset`: a
starting batch size and concurrency, how (or whether) it adapts, and a pace
factor, the share of the ``rate_limit_buffer`` it lets the client spend.

Adapting is AIMD, decided once per batch from a :class:`BatchOutcome`, as TCP
does for the same reason: grow gently while things are healthy, back off hard
at the first sign of trouble, and the system settles just under the point
where the API starts pushing back.

* Shrink (halve batch size and concurrency) when the error rate is >= 10%,
  any request timed out or was rate limited, the tightest rate-limit bucket
  has <= 20% left, or a breaker is not closed. The 10% and 20% thresholds are
  seed 002's ``errorRateThreshold`` and ``rateLimitThreshold``.
* Hold when p95 latency is over three times the best seen (that best floored
  at 10 ms): the API is saturating, adding load would only queue it.
* Otherwise grow: batch size by a fifth of the default, concurrency by one.

``aggressive`` shrinks on errors only (not on low headroom or latency: the
pacer still keeps it inside the rate limit) and starts at the top.
``sequential`` and ``parallel`` never move. An operator's
:meth:`BatchSizer.set_concurrency` pins concurrency until changed again or a
strategy is chosen; batch size keeps adapting. Every value stays inside
``[min_batch_size, max_batch_size]`` and ``[1, max_concurrent_requests]``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from engine.config import AppConfig, BatchConfig, BatchStrategy
from engine.errors import ErrorClass, InputError

ERROR_RATE_THRESHOLD = 0.10
ERROR_WINDOW_ITEMS = 30     # items the error rate is judged over (a few batches)
LOW_HEADROOM = 0.20
LATENCY_HOLD_FACTOR = 3.0
LATENCY_FLOOR_MS = 10.0
HISTORY_LEN = 30


class Adapt(StrEnum):
    FIXED = "fixed"                # never moves
    AIMD = "aimd"                  # grows when healthy, halves on any trouble
    ERRORS_ONLY = "errors_only"    # grows when healthy, halves on errors only


@dataclass(frozen=True, slots=True)
class StrategyPreset:
    strategy: BatchStrategy
    batch_size: Callable[[BatchConfig], int]
    concurrency: Callable[[BatchConfig], int]
    adapt: Adapt
    pace_factor: float
    description: str


PRESETS: dict[BatchStrategy, StrategyPreset] = {p.strategy: p for p in (
    StrategyPreset(BatchStrategy.SEQUENTIAL, lambda c: c.default_batch_size, lambda c: 1, Adapt.FIXED, 1.0,
                   "one request at a time, default batch size; for debugging or tiny budgets"),
    StrategyPreset(BatchStrategy.PARALLEL, lambda c: c.default_batch_size,
                   lambda c: c.max_concurrent_requests, Adapt.FIXED, 1.0,
                   "full concurrency, default batch size, fixed; for high limits and stable networks"),
    StrategyPreset(BatchStrategy.ADAPTIVE, lambda c: c.default_batch_size,
                   lambda c: max(1, (c.max_concurrent_requests + 1) // 2), Adapt.AIMD, 1.0,
                   "starts at half concurrency; grows while healthy, halves on errors or low headroom"),
    StrategyPreset(BatchStrategy.AGGRESSIVE, lambda c: c.max_batch_size,
                   lambda c: c.max_concurrent_requests, Adapt.ERRORS_ONLY, 1.0,
                   "starts at the maximum; backs off on errors only; for time-critical scans"),
    StrategyPreset(BatchStrategy.CONSERVATIVE,
                   lambda c: min(c.default_batch_size, max(c.min_batch_size, c.default_batch_size // 2)),
                   lambda c: max(1, c.max_concurrent_requests // 4), Adapt.AIMD, 0.75,
                   "small batches, a quarter of the concurrency, 75% of the rate budget; adapts"),
)}


@dataclass(slots=True)
class BatchOutcome:
    """How one batch went, as the runner saw it.

    ``failed`` counts items whose attempt failed in this batch (retried later
    or not); ``errors`` breaks those down by class. ``headroom`` is
    remaining/limit of the tightest rate-limit bucket (None if unknown).
    """

    size: int
    succeeded: int
    failed: int
    errors: dict[ErrorClass, int] = field(default_factory=dict)
    p95_ms: float | None = None
    headroom: float | None = None
    breaker_open: bool = False   # any breaker of the run not closed
    memory_pressure: bool = False  # the process is above max_memory_usage_mb

    @property
    def error_rate(self) -> float:
        tried = self.succeeded + self.failed
        return self.failed / tried if tried else 0.0


@dataclass(frozen=True, slots=True)
class SizingDecision:
    batch_size: int
    concurrency: int
    reason: str


def concurrency_ceiling(config: AppConfig | BatchConfig) -> int:
    """The most requests a run may have in flight: the size of its worker pool and the top of
    the range the operator (or a strategy) may set (``batch.concurrency.max_concurrent_requests``)."""
    batch = config.batch if isinstance(config, AppConfig) else config
    return batch.max_concurrent_requests


def stored_concurrency_ceiling(config: Mapping[str, object]) -> int:
    """:func:`concurrency_ceiling` of a run's stored config (``RunInfo.config``); one the
    config machinery no longer accepts gives the defaults' ceiling."""
    try:
        return concurrency_ceiling(AppConfig.from_dict(config))
    except InputError:
        return concurrency_ceiling(AppConfig())


class BatchSizer:
    """The batch size and concurrency the runner should use next.

    Not thread-safe and needs no lock: the runner calls it from its event loop.
    """

    def __init__(self, config: AppConfig | BatchConfig, strategy: BatchStrategy | str | None = None) -> None:
        self.config = config.batch if isinstance(config, AppConfig) else config
        self._pinned = False
        self._best_p95: float | None = None
        self.history: deque[SizingDecision] = deque(maxlen=HISTORY_LEN)
        self._window: deque[tuple[int, int]] = deque(maxlen=8)
        self.set_strategy(strategy or self.config.default_strategy)

    @property
    def preset(self) -> StrategyPreset:
        return PRESETS[self.strategy]

    @property
    def pace_factor(self) -> float:
        return self.preset.pace_factor

    @property
    def concurrency_pinned(self) -> bool:
        return self._pinned

    def _clamp_size(self, n: int) -> int:
        return max(self.config.min_batch_size, min(self.config.max_batch_size, n))

    def _clamp_conc(self, n: int) -> int:
        return max(1, min(concurrency_ceiling(self.config), n))

    def _note(self, reason: str) -> None:
        self.history.append(SizingDecision(self.batch_size, self.concurrency, reason))

    def set_strategy(self, name: BatchStrategy | str) -> None:
        """Switch strategy and restart from its preset (clears an operator pin)."""
        try:
            strategy = BatchStrategy(str(name).lower())
        except ValueError:
            choices = ", ".join(s.value for s in BatchStrategy)
            raise InputError(f"unknown strategy {name!r}; choose one of {choices}") from None
        self.strategy = strategy
        self._pinned = False
        self._best_p95 = None
        self.batch_size = self._clamp_size(self.preset.batch_size(self.config))
        self.concurrency = self._clamp_conc(self.preset.concurrency(self.config))
        self._note(f"strategy {strategy.value}")

    def set_concurrency(self, n: int | None) -> int:
        """Operator override, clamped to 1..max_concurrent_requests; it sticks
        until the next override or strategy change. ``None`` hands it back."""
        if n is None:
            self._pinned = False
            self._note("operator released concurrency")
        else:
            self.concurrency = self._clamp_conc(int(n))
            self._pinned = True
            self._note(f"operator set concurrency {self.concurrency}")
        return self.concurrency

    def _trouble(self, o: BatchOutcome) -> str | None:
        """Why to shrink, or None."""
        errors_only = self.preset.adapt is Adapt.ERRORS_ONLY
        # Judge the error rate over the last few batches, not one: with batches of
        # ten, a steady 5% failure rate puts one batch in two over 10% and would halve
        # concurrency forever. A whole batch failing still counts at once.
        self._window.append((o.succeeded, o.failed))
        seen = sum(s + f for s, f in self._window)
        failed = sum(f for _, f in self._window)
        rate = failed / seen if seen else 0.0
        burst = o.error_rate >= 2 * ERROR_RATE_THRESHOLD and o.succeeded + o.failed >= 10
        if (seen >= ERROR_WINDOW_ITEMS and rate >= ERROR_RATE_THRESHOLD) or burst or (o.failed and not o.succeeded):
            self._window.clear()
            return f"error rate {max(rate, o.error_rate):.0%}"
        if o.errors.get(ErrorClass.TIMEOUT):
            return "timeouts"
        limited = o.errors.get(ErrorClass.RATE_LIMITED, 0) + o.errors.get(ErrorClass.SECONDARY_LIMITED, 0)
        if limited:
            return "rate limited"
        if o.breaker_open:
            return "breaker not closed"
        if o.memory_pressure:
            return "memory above max_memory_usage_mb"
        if not errors_only and o.headroom is not None and o.headroom <= LOW_HEADROOM:
            return f"rate-limit headroom {o.headroom:.0%}"
        return None

    def on_batch_end(self, outcome: BatchOutcome) -> SizingDecision | None:
        """Adapt after a batch; returns the decision (None for fixed strategies)."""
        if self.preset.adapt is Adapt.FIXED:
            return None
        trouble = self._trouble(outcome)
        if trouble:
            self.batch_size = self._clamp_size(self.batch_size // 2)
            if not self._pinned:
                self.concurrency = self._clamp_conc(self.concurrency // 2)
            self._note(f"shrink: {trouble}")
        elif self._saturating(outcome.p95_ms):
            self._note(f"hold: p95 {outcome.p95_ms:.0f} ms is over {LATENCY_HOLD_FACTOR:g}× the best")
        else:
            self.batch_size = self._clamp_size(self.batch_size + max(1, self.config.default_batch_size // 5))
            if not self._pinned:
                self.concurrency = self._clamp_conc(self.concurrency + 1)
            self._note("grow: healthy")
        return self.history[-1]

    def _saturating(self, p95_ms: float | None) -> bool:
        if p95_ms is None or self.preset.adapt is Adapt.ERRORS_ONLY:
            return False
        if self._best_p95 is None or p95_ms < self._best_p95:
            self._best_p95 = p95_ms
        # the floor keeps jitter around a near-zero best from looking like saturation
        return p95_ms > LATENCY_HOLD_FACTOR * max(self._best_p95, LATENCY_FLOOR_MS)
