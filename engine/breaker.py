"""Circuit breaker per lane: stop sending work to an API that is failing.

Written by hand rather than taken from a library (pybreaker, aiobreaker,
purgatory) because the console must *observe* it: its state, the consecutive
failure count, when the next probe may go, and a history of transitions with
reasons. Those libraries hide that, count differently, or are synchronous.

States: ``closed`` (calls flow) → ``open`` after ``threshold`` consecutive
counted failures (calls wait) → ``half_open`` once the recovery time has
passed, admitting at most ``half_open_probes`` concurrent probes → ``closed``
on a probe success, back to ``open`` on a probe failure.

Recovery time: ``recovery_timeout`` doubled for every probe that failed since
the breaker last closed, capped at ``MAX_RECOVERY_FACTOR`` × ``recovery_timeout``,
then jittered to between half and one and a half times that. Without jitter a
fixed 30 s recovery lined its probes up with a server's periodic 15 s error
bursts: every probe hit a burst and a scan stalled. With it, probes land at
random phases and the breaker closes between bursts; the doubling spares a
service that is down for good. ``rng`` is injectable for tests.

**One owner per outcome.** A call through the GitHub client is recorded by
the client (one request, one outcome); the runner records an item's outcome
on its lane's breaker only when nothing inside the item recorded on that
breaker (a job kind that made no request, or a request on another lane). The
runner installs :func:`track_outcomes` in each worker task; every record on a
breaker notes its lane there. Before, both recorded: one failed request counted
as two failures and a breaker with threshold 5 opened after 3.

What counts as a failure: only signs that the service is unhealthy — server
errors, network errors and timeouts. Client and auth errors are the request's
fault; rate limits are the pacer's job (the service is healthy and said so);
``unexpected`` errors are bugs in a job kind, not the API's health, and
counting them would stall every other item of the lane behind a bug. These
classes are *neutral*: they neither count nor reset the failure streak, and a
neutral probe outcome just frees the probe slot.

Each :class:`Permit` remembers the breaker generation it was issued in (a
generation ends at every transition); outcomes of permits from an earlier
generation are ignored, so a slow call admitted before the breaker opened
cannot close it, and one that fails late cannot re-open it.

Clocks are injected: ``clock`` (monotonic) drives the state machine, ``wall``
(epoch) only stamps the history and ``next_probe_at`` for display. With a fake
clock, waiters in :meth:`CircuitBreaker.acquire` wake on the next state read
(``state``, ``allow``, ``view``...) after the clock moved.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from enum import StrEnum

from engine.config import AppConfig, BatchConfig
from engine.errors import ErrorClass, classify
from engine.models import BreakerTransition, BreakerView

COUNTED_FAILURES = frozenset({ErrorClass.SERVER, ErrorClass.NETWORK, ErrorClass.TIMEOUT})
HISTORY_LEN = 50
#: the longest recovery, as a multiple of ``recovery_timeout`` (before jitter)
MAX_RECOVERY_FACTOR = 4.0

# lanes whose breaker heard an outcome in this context (see "One owner per outcome")
_heard: ContextVar[set[str] | None] = ContextVar("batchdeck_breaker_outcomes", default=None)


def track_outcomes() -> set[str]:
    """Start noting, in the current context (one worker task and the tasks it starts), the
    lanes whose breaker records an outcome; the caller clears the set between items."""
    heard: set[str] = set()
    _heard.set(heard)
    return heard


def _note(lane: str) -> None:
    heard = _heard.get()
    if heard is not None:
        heard.add(lane)

TransitionListener = Callable[[str, BreakerTransition], None]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Permit:
    """Admission to make one call. Report its outcome once; ``with permit:``
    frees a half-open probe slot if the call ended without an outcome
    (cancelled, say), so a lost probe cannot wedge the breaker half-open."""

    __slots__ = ("_breaker", "generation", "probe", "done")

    def __init__(self, breaker: CircuitBreaker, generation: int, probe: bool) -> None:
        self._breaker = breaker
        self.generation = generation
        self.probe = probe
        self.done = False

    def success(self) -> None:
        self._breaker.record_success(self)

    def failure(self, error: ErrorClass | BaseException) -> None:
        self._breaker.record_failure(error, self)

    def release(self) -> None:
        """End without an outcome (neutral)."""
        self._breaker.record_failure(ErrorClass.CLIENT, self)

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.done:
            self.release()


class CircuitBreaker:
    def __init__(
        self,
        lane: str,
        threshold: int = 5,
        recovery_timeout: float = 30.0,
        half_open_probes: int = 1,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_transition: TransitionListener | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.lane = lane
        self.threshold = threshold
        self.recovery_timeout = recovery_timeout
        self.half_open_probes = half_open_probes
        self._rng = rng
        self._reopens = 0           # probes failed since the breaker last closed
        self._open_for = recovery_timeout
        self._clock = clock
        self._wall = wall
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._generation = 0
        self._failures = 0          # consecutive counted failures
        self._opened_at = 0.0       # clock() when it last opened
        self._probes = 0            # probes in flight while half-open
        self._changed = asyncio.Event()
        self.transitions: deque[BreakerTransition] = deque(maxlen=HISTORY_LEN)

    # -- state -----------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._open_remaining() <= 0:
            self._move(BreakerState.HALF_OPEN, f"recovery time {self._open_for:.1f}s elapsed")
        return self._state

    @property
    def closed(self) -> bool:
        """Cheap check for the hot path: a closed breaker has no timed transition."""
        return self._state is BreakerState.CLOSED

    @property
    def failures(self) -> int:
        return self._failures

    def _open_remaining(self) -> float:
        return self._opened_at + self._open_for - self._clock()

    def _recovery_time(self) -> float:
        base = min(self.recovery_timeout * 2 ** self._reopens, self.recovery_timeout * MAX_RECOVERY_FACTOR)
        return base * (0.5 + self._rng())

    def _move(self, to: BreakerState, reason: str) -> None:
        transition = BreakerTransition(self._wall(), self._state.value, to.value, reason)
        self._state = to
        self._generation += 1
        self._probes = 0
        if to is BreakerState.OPEN:
            if transition.from_state == BreakerState.HALF_OPEN.value:
                self._reopens += 1
            self._opened_at = self._clock()
            self._open_for = self._recovery_time()
        elif to is BreakerState.CLOSED:
            self._failures = 0
            self._reopens = 0
        self.transitions.append(transition)
        self._wake()
        if self._on_transition is not None:
            self._on_transition(self.lane, transition)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- admission -------------------------------------------------------------

    def try_acquire(self) -> Permit | None:
        """A permit if a call may go now, else None (never waits)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return Permit(self, self._generation, probe=False)
        if state is BreakerState.HALF_OPEN and self._probes < self.half_open_probes:
            self._probes += 1
            return Permit(self, self._generation, probe=True)
        return None

    def allow(self) -> bool:
        """Non-blocking admission. While half-open, True takes a probe slot that
        the next permit-less ``record_success``/``record_failure`` gives back."""
        return self.try_acquire() is not None

    async def acquire(self) -> Permit:
        """Wait until the breaker admits a call: at once when closed, after the
        recovery timeout when open, for a free probe slot when half-open."""
        while True:
            permit = self.try_acquire()
            if permit is not None:
                return permit
            changed = self._changed
            timeout = max(self._open_remaining(), 0.001) if self._state is BreakerState.OPEN else None
            try:
                async with asyncio.timeout(timeout):
                    await changed.wait()
            except TimeoutError:
                pass

    # -- outcomes --------------------------------------------------------------

    def _current(self, permit: Permit | None) -> bool:
        if permit is None:
            return True
        if permit.done:
            return False
        permit.done = True
        return permit.generation == self._generation

    def record_success(self, permit: Permit | None = None) -> None:
        _note(self.lane)
        if not self._current(permit):
            return
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._move(BreakerState.CLOSED, "probe succeeded")
        elif state is BreakerState.CLOSED:
            self._failures = 0

    def record_failure(self, error: ErrorClass | BaseException, permit: Permit | None = None) -> None:
        _note(self.lane)
        if not self._current(permit):
            return
        error_class = error if isinstance(error, ErrorClass) else classify(error)
        state = self.state
        if error_class not in COUNTED_FAILURES:
            if state is BreakerState.HALF_OPEN and self._probes > 0:
                self._probes -= 1       # neutral probe: let another one go
                self._wake()
            return
        if state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self.threshold:
                self._move(BreakerState.OPEN,
                           f"{self._failures} consecutive failures (last: {error_class.value})")
        elif state is BreakerState.HALF_OPEN:
            self._failures += 1
            self._move(BreakerState.OPEN, f"probe failed ({error_class.value})")

    # -- display ---------------------------------------------------------------

    def view(self) -> BreakerView:
        state = self.state
        next_probe_at = None
        if state is BreakerState.OPEN:
            next_probe_at = self._wall() + max(0.0, self._open_remaining())
        return BreakerView(
            lane=self.lane,
            state=state.value,
            failures=self._failures,
            threshold=self.threshold,
            next_probe_at=next_probe_at,
            transitions=list(self.transitions),
        )


class BreakerRegistry:
    """One breaker per lane, created on first use with the config's settings."""

    def __init__(
        self,
        config: AppConfig | BatchConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_transition: TransitionListener | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        batch = config.batch if isinstance(config, AppConfig) else config
        self._rng = rng
        self._settings = (batch.breaker_failure_threshold, batch.breaker_recovery_timeout,
                          batch.breaker_half_open_probes)
        self._clock = clock
        self._wall = wall
        self._on_transition = on_transition
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, lane: str) -> CircuitBreaker:
        breaker = self._breakers.get(lane)
        if breaker is None:
            threshold, recovery, probes = self._settings
            breaker = CircuitBreaker(lane, threshold, recovery, probes, clock=self._clock,
                                     wall=self._wall, on_transition=self._on_transition, rng=self._rng)
            self._breakers[lane] = breaker
        return breaker

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(list(self._breakers.values()))

    def views(self) -> list[BreakerView]:
        return [self._breakers[lane].view() for lane in sorted(self._breakers)]

    def any_not_closed(self) -> bool:
        return any(b.state is not BreakerState.CLOSED for b in self._breakers.values())
