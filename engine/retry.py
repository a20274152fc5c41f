"""When to try an item again, and how long to wait first.

Each :class:`~engine.errors.ErrorClass` has its own policy, the defaults of
seed 002: rate limits back off hard (×2, up to 60 s), network trouble retries
sooner (×1.5, up to 10 s), server errors back off normally (×2, up to 30 s),
timeouts retry quickly (×1.2, up to 5 s). Client, auth and unexpected errors
are not retried: the same request would fail the same way (and a bad token
retried would storm the API).

The delay for retry ``n`` (0-based) is ``min(cap, retry_delay_base ·
multiplier**n)`` with *equal jitter*: half of it is kept, the other half drawn
at random. Equal rather than full jitter so a retry never comes back at once
(full jitter can draw ~0 and hammer a struggling server), while items that
failed together still spread out. The random source is injectable for tests.

When the server says how long to wait — ``retry-after``, or the reset time of
an empty primary bucket — that wins over the computed delay, uncapped and
without jitter: it is the server's word. A secondary limit without
``retry-after`` waits at least GitHub's documented minute (scaled by
``github.time_scale`` so tests against the simulator run fast).

The planner only decides; the runner requeues the item with ``not_before =
now + delay`` instead of holding a worker while it waits.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.config import AppConfig, BatchConfig
from engine.errors import BatchProcessingError, ErrorClass, RateLimitError, classify

SECONDARY_LIMIT_MIN_WAIT_S = 60.0   # GitHub: "wait at least one minute" when no retry-after


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retryable: bool
    multiplier: float = 2.0
    cap_s: float = 0.0

    def backoff(self, base: float, retries_so_far: int) -> float:
        """The un-jittered delay before retry number ``retries_so_far + 1``."""
        return min(self.cap_s, base * self.multiplier ** retries_so_far)


DEFAULT_POLICIES: dict[ErrorClass, RetryPolicy] = {
    ErrorClass.RATE_LIMITED: RetryPolicy(True, 2.0, 60.0),
    ErrorClass.SECONDARY_LIMITED: RetryPolicy(True, 2.0, 60.0),
    ErrorClass.NETWORK: RetryPolicy(True, 1.5, 10.0),
    ErrorClass.SERVER: RetryPolicy(True, 2.0, 30.0),
    ErrorClass.TIMEOUT: RetryPolicy(True, 1.2, 5.0),
    ErrorClass.CLIENT: RetryPolicy(False),
    ErrorClass.AUTH: RetryPolicy(False),
    ErrorClass.UNEXPECTED: RetryPolicy(False),
}


@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry: bool
    delay: float      # seconds to wait before the next try (0 when not retrying)
    reason: str       # one line for logs, the attempts table and the console


class RetryPlanner:
    """Decides, per failure, whether to retry and after how long.

    ``config`` is an :class:`AppConfig` (its ``github.time_scale`` then scales
    GitHub's fixed waits) or a bare :class:`BatchConfig`. ``rng`` returns floats
    in [0, 1); ``wall`` is the epoch clock rate-limit reset times are read
    against.
    """

    def __init__(
        self,
        config: AppConfig | BatchConfig,
        *,
        policies: dict[ErrorClass, RetryPolicy] | None = None,
        rng: Callable[[], float] = random.random,
        wall: Callable[[], float] = time.time,
    ) -> None:
        batch = config.batch if isinstance(config, AppConfig) else config
        self.base = batch.retry_delay_base
        self.max_retries = batch.retry_attempts
        self.time_scale = config.github.time_scale if isinstance(config, AppConfig) else 1.0
        self.policies = {**DEFAULT_POLICIES, **(policies or {})}
        self._rng = rng
        self._wall = wall

    def policy(self, error_class: ErrorClass) -> RetryPolicy:
        return self.policies[error_class]

    def decide(
        self,
        error: BaseException | ErrorClass,
        attempts_so_far: int,
        retry_after: float | None = None,
    ) -> RetryDecision:
        """``attempts_so_far`` counts retries already made (0 after the first try)."""
        error_class = error if isinstance(error, ErrorClass) else classify(error)
        name = error_class.value.replace("_", " ")
        if isinstance(error, BatchProcessingError) and error.fatal:
            return RetryDecision(False, 0.0, f"{name} error is fatal: not retried")
        policy = self.policy(error_class)
        if not policy.retryable:
            return RetryDecision(False, 0.0, f"{name} error: not retried")
        if attempts_so_far >= self.max_retries:
            return RetryDecision(False, 0.0, f"{name} error: gave up after {attempts_so_far} retries")

        n = f"retry {attempts_so_far + 1}/{self.max_retries}"
        server_wait = self._server_wait(error, retry_after)
        if server_wait is not None:
            return RetryDecision(True, server_wait, f"{name}: {n} in {server_wait:.2f}s (server's wait)")
        backoff = policy.backoff(self.base, attempts_so_far)
        delay = backoff / 2 + self._rng() * backoff / 2
        why = f"×{policy.multiplier:g} backoff, cap {policy.cap_s:g}s"
        if error_class is ErrorClass.SECONDARY_LIMITED:
            floor = SECONDARY_LIMIT_MIN_WAIT_S * self.time_scale
            if floor > delay:
                delay, why = floor, f"GitHub's {SECONDARY_LIMIT_MIN_WAIT_S:g}s minimum × time scale"
        return RetryDecision(True, delay, f"{name}: {n} in {delay:.2f}s ({why})")

    def _server_wait(self, error: Any, retry_after: float | None) -> float | None:
        if retry_after is None:
            retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return max(0.0, float(retry_after))
        if isinstance(error, RateLimitError) and error.reset_time is not None:
            return max(0.0, error.reset_time - self._wall())
        return None
