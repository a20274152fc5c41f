"""Primary rate limits: a tracker per resource fed by every response, and a pacer.

Written here rather than taken from a rate-limiting library (aiolimiter,
limits, pyrate-limiter): those model a fixed rate the caller declares, while
GitHub's budget is a *server-side* bucket that the client only observes. The
``x-ratelimit-limit/remaining/used/reset/resource`` headers of every response
say how much of it is left and when it refills; other processes using the same
token drain it too; responses arrive out of order and a ``304`` costs nothing.
No library models that, so this module does, in two parts:

**Tracker** (:class:`Bucket`, one per resource: core, search, graphql, ...).
It keeps the server's word (the highest ``used`` seen for the current window,
the window's ``reset`` epoch, which may be a decimal when the simulator scales
time) plus what only the client knows: requests reserved but not yet answered
(``pending``). Its estimate of the bucket is ``used + pending``: it may
over-count for a moment (a response's ``used`` already includes requests whose
answers are still on the way) but never under-counts, so it errs on the safe
side and is exact again as soon as answers land. A response carrying an older
reset (sent before the window rolled) is ignored.

**Pacer** (:meth:`Bucket.try_reserve`). The run may spend at most
``budget = floor(rate_limit_buffer × limit)`` per window, and the rule is:

1. *Reserve before sending.* A request counts against the bucket from the
   moment it is admitted, so twenty concurrent callers cannot all see the same
   last unit of allowance.
2. *Never exceed the budget.* When ``used + pending + 1 > budget``, wait: for
   answers if some are in flight (the estimate may be high), otherwise until
   the window resets (``reset`` plus a small margin for clock rounding).
3. *Finish first (``pacing: finish``, the default).* Inside the budget a request
   is admitted at once: the secondary limits (points per minute, concurrency,
   paced by the client elsewhere) are then the only bound, and the run waits for
   the reset only when it has spent its budget. Spreading never finishes a job
   sooner, and ``rate_limit_buffer`` already keeps the reserve other users of
   the token need.

   *Spread (``pacing: spread``)*, for a token shared with other automation that
   must not find the bucket drained early in the hour: the allowed rate is
   ``(budget - used - pending) / (reset - now)``, recomputed at every decision,
   and admissions draw from a token bucket refilled at that rate, holding at
   most a burst of half the budget (full when a window is learned). Half,
   because an incident scan of a few hundred repositories (a few hundred
   requests against a 5,000/h bucket) must finish at full speed, not trickle
   at ``budget / hour``; the other half keeps a long run from spending the
   whole window in its first minutes and stalling for the rest. Spending at
   that rate keeps the rate constant, so a long run neither bursts through the
   allowance in its first minutes and stalls for the rest of the hour, nor
   leaves allowance unused at the reset; an idle spell is not banked beyond the
   burst, it just raises the rate for the time that is left.
4. *Unknown bucket → one probe.* Before the first answer of a resource (and
   again after each reset, since the new window is only assumed) a single
   request goes out alone; its headers teach the tracker the limit and reset.
   A successful answer without rate headers (GitHub Enterprise with rate
   limiting disabled) marks the resource untracked: no pacing.
5. *A refusal empties the bucket.* A 403/429 with ``remaining: 0`` sets
   ``used = limit``, so rule 2 waits for the reset; the client then retries.

Every wait for a reset is counted (:attr:`Bucket.reset_waits`, once per
window) and the bucket says what is left (:meth:`Bucket.outlook` and
:func:`budget_outlook`, for progress displays).

Clocks are injected (``clock`` returns epoch seconds, as ``reset`` is one;
``sleep`` awaits), so the maths is tested without waiting.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from engine.deferral import defer_if_long
from engine.models import RateLimitGauge

PROBE_POLL_S = 0.005        # how often a caller re-checks while a probe or answers are in flight
MAX_NAP_S = 0.5             # re-evaluate at least this often while waiting (new answers may change the plan)
BURST_SHARE = 0.5           # of the budget, admitted at once when a window starts (spread pacing)
MIN_WAIT_S = 1e-4
PACINGS = ("finish", "spread")


@dataclass(frozen=True, slots=True)
class RateHeaders:
    """The ``x-ratelimit-*`` headers of one response."""

    limit: int
    remaining: int
    used: int
    reset: float
    resource: str | None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None and not hasattr(headers, "multi_items"):   # plain dicts: case-insensitive by hand
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


def parse_rate_headers(headers: Mapping[str, str]) -> RateHeaders | None:
    """The rate-limit headers, or None when a response has none (or they are garbled)."""
    raw_limit = _header(headers, "x-ratelimit-limit")
    raw_remaining = _header(headers, "x-ratelimit-remaining")
    raw_reset = _header(headers, "x-ratelimit-reset")
    if raw_limit is None or raw_remaining is None or raw_reset is None:
        return None
    try:
        limit = int(float(raw_limit))
        remaining = int(float(raw_remaining))
        reset = float(raw_reset)
        raw_used = _header(headers, "x-ratelimit-used")
        used = int(float(raw_used)) if raw_used is not None else limit - remaining
    except ValueError:
        return None
    if limit < 0 or remaining < 0 or not math.isfinite(reset):
        return None
    resource = _header(headers, "x-ratelimit-resource")
    # ``used`` and ``remaining`` can disagree when other counters share the bucket;
    # trust whichever says more has been spent.
    return RateHeaders(limit, remaining, max(used, limit - remaining), reset, resource or None)


@dataclass(frozen=True, slots=True)
class BudgetOutlook:
    """What N more requests of one resource will cost in windows and waits.

    ``budget_left`` is what the run may still spend before the next reset
    (``rate_limit_buffer × limit`` minus what is used and in flight);
    ``windows`` counts the rate-limit windows the requests touch, the current
    one included; ``resets`` how many times the run will wait for a reset;
    ``wait_s`` how long those waits last together and ``eta_s`` when the last
    request goes out, waits included (both in seconds of the clock the bucket
    runs on: scaled time against a scaled simulator).
    """

    requests: int
    budget_left: int
    next_reset_at: float | None
    windows: int
    resets: int
    wait_s: float
    eta_s: float


def budget_outlook(requests: int, *, budget_left: int, budget_per_window: int, now: float,
                   reset_at: float | None, window_s: float, rate_per_s: float) -> BudgetOutlook:
    """Windows and waits that ``requests`` more requests need (a pure function).

    The run spends what is left of this window at ``rate_per_s`` (the fastest
    the secondary limits allow under finish-first pacing), then waits for the
    reset at ``reset_at`` (``None``: no window is open, one opens with the next
    request), then spends up to ``budget_per_window`` per window, each new
    window opening with its first request as GitHub's do, until none is left.
    """
    rate = max(rate_per_s, 1e-9)
    if budget_per_window <= 0:      # an untracked resource (no rate limit): only the rate bounds it
        n = max(0, requests)
        return BudgetOutlook(n, 0, None, 1 if n else 0, 0, 0.0, n / rate)
    budget_left = max(0, budget_left)
    t, left, windows, resets, waited = now, max(0, requests), 0, 0, 0.0
    window_end = reset_at if reset_at is not None else None
    if window_end is None:
        budget_left = budget_per_window if budget_left == 0 else budget_left
    take = min(left, budget_left)
    if take > 0:
        windows += 1
        if window_end is None:
            window_end = t + window_s
        t += take / rate
        left -= take
    while left > 0:
        if window_end is not None and t < window_end:
            waited += window_end - t
            resets += 1
            t = window_end
        take = min(left, max(1, budget_per_window))
        windows += 1
        window_end = t + window_s
        t += take / rate
        left -= take
    return BudgetOutlook(requests=max(0, requests), budget_left=budget_left, next_reset_at=reset_at,
                         windows=windows, resets=resets, wait_s=waited, eta_s=t - now)


@dataclass(slots=True)
class Reservation:
    """One admitted request: settle it with the response's headers (or without)."""

    resource: str
    window: int
    sent_at: float


class Bucket:
    """Tracker and pacer of one primary rate-limit resource (see the module docstring)."""

    def __init__(self, resource: str, buffer: float, *, reset_margin_s: float = 1.0,
                 pacing: str = "finish") -> None:
        if not 0 < buffer <= 1:
            raise ValueError(f"rate_limit_buffer must be in (0, 1], got {buffer}")
        if pacing not in PACINGS:
            raise ValueError(f"pacing must be one of {', '.join(PACINGS)}, got {pacing!r}")
        self.resource = resource
        self.pacing = pacing
        self.buffer = buffer
        self.reset_margin_s = reset_margin_s
        self.limit: int | None = None
        self.used = 0               # the server's count for the current window (highest seen)
        self.reset_at = 0.0         # epoch when the current window ends
        self.known = False          # the current window's state came from headers
        self.untracked = False      # the server sends no rate headers for this resource
        self.pending = 0            # admitted in the current window, not answered yet
        self.window = 0             # bumps when the window is assumed to roll
        self.skew_s = 0.0           # how far the server's clock was seen behind ours
        self.learned_from = -math.inf   # when the request that taught us the current window was sent
        self.tokens = 0.0
        self.refilled_at: float | None = None
        self.pace_per_s: float | None = None
        self.reset_waits = 0        # windows whose budget ran out before their reset
        self._waiting_window: int | None = None

    # -- what the run may spend ------------------------------------------------------

    @property
    def budget(self) -> int:
        if self.limit is None:
            return 0
        return max(1, math.floor(self.buffer * self.limit + 1e-9)) if self.limit > 0 else 0

    @property
    def burst(self) -> float:
        return float(max(1, round(self.budget * BURST_SHARE)))

    def estimated_used(self) -> int:
        return self.used + self.pending

    def spent(self) -> bool:
        """The budget is spent and nothing is in flight: only the reset frees it (rule 2)."""
        return (self.known and not self.untracked and self.pending == 0
                and self.estimated_used() + 1 > self.budget)

    # -- admission ---------------------------------------------------------------------

    def _roll(self) -> None:
        """The tracked window is over: forget it and probe the next one."""
        self.known = False
        self.used = 0
        self.pending = 0
        self.window += 1
        self.tokens = 0.0
        self.refilled_at = None

    def _maybe_roll(self, now: float) -> None:
        if self.known and now >= self.reset_at + self.reset_margin_s + self.skew_s:
            self._roll()   # the bucket has refilled, as far as we can tell: probe before trusting that

    def try_reserve(self, now: float) -> float:
        """Admit one request now (returns 0 and counts it pending) or say how long to wait."""
        if self.untracked:
            self.pending += 1
            return 0.0
        self._maybe_roll(now)
        if not self.known:
            if self.pending == 0:
                self.pending += 1
                return 0.0
            return PROBE_POLL_S
        budget = self.budget
        spent = self.estimated_used()
        if spent + 1 > budget:
            self.pace_per_s = 0.0
            if self.pending > 0:
                return PROBE_POLL_S      # answers in flight may show we over-counted
            if self._waiting_window != self.window:
                self._waiting_window = self.window
                self.reset_waits += 1
            return max(self.reset_at + self.reset_margin_s + self.skew_s - now, PROBE_POLL_S)
        if self.pacing == "finish":
            self.pace_per_s = None       # bound by the secondary limits only
            self.pending += 1
            return 0.0
        # Aim to finish a margin before the reset, so the last requests land in this window.
        horizon = max(self.reset_at - self.reset_margin_s - now, 1e-3)
        rate = (budget - spent) / horizon
        self.pace_per_s = rate
        if self.refilled_at is None:
            self.tokens = self.burst
        else:
            self.tokens = min(self.burst, self.tokens + rate * max(0.0, now - self.refilled_at))
        self.refilled_at = now
        if self.tokens >= 1.0 - 1e-6:
            self.tokens = max(0.0, self.tokens - 1.0)
            self.pending += 1
            return 0.0
        # Epoch floats resolve ~0.2 µs: never ask for a wait too small to move the clock.
        return max((1.0 - self.tokens) / rate, MIN_WAIT_S)

    # -- learning from answers ---------------------------------------------------------

    def settle(self, reservation: Reservation | None, rate: RateHeaders | None, *,
               ok_without_headers: bool = False) -> None:
        """Account for an answer (or a failure to get one) to ``reservation``."""
        if reservation is not None and reservation.window == self.window and self.pending > 0:
            self.pending -= 1
        if rate is None:
            if ok_without_headers and not self.known:
                self.untracked = True
            return
        self.observe(rate, reservation)

    def observe(self, rate: RateHeaders, reservation: Reservation | None = None) -> None:
        """Fold one response's headers into the tracker."""
        self.untracked = False
        self.limit = rate.limit
        eps = max(0.5 * self.reset_margin_s, 1e-3)
        if rate.reset > self.reset_at + eps:
            if rate.used == 0:
                # A glimpse of a window nothing has been counted in yet (an answer that
                # straddled the reset, a 304, /rate_limit): its reset is only a guess until
                # the first counted request opens it. It says the tracked window is over,
                # unless it was sent before the tracked window was learned (a straddler
                # answered late): then it is old news.
                sent_at = reservation.sent_at if reservation is not None else math.inf
                if self.known and sent_at >= self.learned_from:
                    self._roll()
                elif not self.known:
                    # Nothing counted yet (a re-scan answered only by 304s): the whole budget is
                    # there and a counted request will tell the real reset, which can only be
                    # later than this guess. Adopting it ends the one-at-a-time probing.
                    self.reset_at = rate.reset
                    self.used = 0
                    self.known = True
                    self.learned_from = reservation.sent_at if reservation is not None else -math.inf
                return
            # A newer window than the one we track (or the first we see).
            self.reset_at = rate.reset
            self.used = rate.used
            self.known = True
            self.learned_from = reservation.sent_at if reservation is not None else -math.inf
        elif abs(rate.reset - self.reset_at) <= eps:
            if self.known:
                self.used = max(self.used, rate.used)
            elif reservation is not None and reservation.window == self.window:
                # We assumed a reset, but a request sent after it still landed in the old
                # window: the server's clock is behind ours. Re-adopt the window and wait
                # longer past each reset from now on.
                self.known = True
                self.used = max(self.used, rate.used)
                self.skew_s = max(self.skew_s * 2, self.reset_margin_s, reservation.sent_at - rate.reset)
        # else: an answer from a window that has already ended; nothing to learn.

    def refused(self, rate: RateHeaders | None, reservation: Reservation | None) -> None:
        """A primary-limit refusal: the bucket is empty until its reset."""
        if rate is not None:
            self.settle(reservation, RateHeaders(rate.limit, 0, rate.limit, rate.reset, rate.resource))
        else:
            self.settle(reservation, None)
            if self.limit is not None:
                self.used = self.limit

    def budget_left(self, now: float) -> int:
        """What the run may still send in the current window (the whole budget when none is open)."""
        if self.untracked:
            return 0
        if not self.known or now >= self.reset_at + self.reset_margin_s + self.skew_s:
            return self.budget
        return max(0, self.budget - self.estimated_used())

    def outlook(self, requests: int, now: float, *, window_s: float, rate_per_s: float) -> BudgetOutlook:
        """:func:`budget_outlook` for this bucket as it stands at ``now``."""
        live = self.known and now < self.reset_at + self.reset_margin_s + self.skew_s
        return budget_outlook(requests, budget_left=self.budget_left(now), budget_per_window=self.budget,
                              now=now, reset_at=self.reset_at if live else None, window_s=window_s,
                              rate_per_s=rate_per_s)

    def gauge(self) -> RateLimitGauge:
        limit = self.limit or 0
        return RateLimitGauge(
            resource=self.resource,
            limit=limit,
            remaining=max(0, limit - self.used),
            used=self.used,
            reset_at=self.reset_at,
            pace_per_s=self.pace_per_s,
            buffer=self.buffer,
        )


class RateLimiter:
    """The buckets of one token, and the async admission in front of them.

    One lock per bucket makes admission first-come first-served: the caller at
    the head waits out the pacing delay while the others queue behind it, so
    twenty waiting callers cost one timer, not twenty wake-ups.

    A caller inside a run's worker (:func:`engine.deferral.deferring`) does not
    wait for a reset further away than ``DEFER_AFTER_S``: it gets
    :class:`~engine.deferral.DeferredUntil` and its worker takes other items
    (another installation's) meanwhile; the callers queued behind it get the
    same answer as soon as they hold the lock.
    """

    def __init__(
        self,
        buffer: float = 0.8,
        *,
        time_scale: float = 1.0,
        pacing: str = "finish",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if pacing not in PACINGS:
            raise ValueError(f"pacing must be one of {', '.join(PACINGS)}, got {pacing!r}")
        self.buffer = buffer
        self.pacing = pacing
        self.time_scale = time_scale
        # GitHub's resets are whole seconds; the simulator's scale with time.
        self.reset_margin_s = max(0.005, min(1.0, 1.0 * time_scale))
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, Bucket] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def bucket(self, resource: str) -> Bucket:
        bucket = self._buckets.get(resource)
        if bucket is None:
            bucket = self._buckets[resource] = Bucket(resource, self.buffer, reset_margin_s=self.reset_margin_s,
                                                      pacing=self.pacing)
            self._locks[resource] = asyncio.Lock()
        return bucket

    async def acquire(self, resource: str) -> Reservation:
        bucket = self.bucket(resource)
        async with self._locks[resource]:
            while True:
                now = self._clock()
                wait = bucket.try_reserve(now)
                if wait <= 0:
                    return Reservation(resource, bucket.window, now)
                if bucket.spent():
                    defer_if_long(f"{resource} budget spent until its reset", now, wait)
                await self._sleep(min(wait, MAX_NAP_S))

    def settle(self, reservation: Reservation | None, rate: RateHeaders | None, *,
               ok_without_headers: bool = False) -> None:
        """Book an answer: the reservation's bucket frees its slot, and the bucket the
        headers name (GitHub says which resource it charged) learns from them."""
        if reservation is not None:
            self.bucket(reservation.resource).settle(reservation, None)
        if rate is not None:
            target = self.bucket(rate.resource or (reservation.resource if reservation else "core"))
            mine = reservation if reservation is not None and reservation.resource == target.resource else None
            target.observe(rate, mine)
        elif reservation is not None and ok_without_headers:
            self.bucket(reservation.resource).settle(None, None, ok_without_headers=True)

    def refused(self, reservation: Reservation | None, rate: RateHeaders | None) -> None:
        resource = (rate.resource if rate and rate.resource else None) or (
            reservation.resource if reservation else "core")
        if reservation is not None and reservation.resource != resource:
            self.bucket(reservation.resource).settle(reservation, None)
            reservation = None
        self.bucket(resource).refused(rate, reservation)

    def reset_time(self, resource: str) -> float | None:
        bucket = self._buckets.get(resource)
        return bucket.reset_at if bucket is not None and bucket.reset_at else None

    def window_s(self, resource: str) -> float:
        """How long a window of ``resource`` lasts (GitHub: a minute for search, else an hour)."""
        return (60.0 if resource in ("search", "code_search") else 3600.0) * self.time_scale

    def gauges(self) -> list[RateLimitGauge]:
        gauges = [self._buckets[name].gauge() for name in sorted(self._buckets) if self._buckets[name].limit]
        for gauge in gauges:
            gauge.window_s = self.window_s(gauge.resource)
        return gauges
