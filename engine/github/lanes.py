"""Lanes: secondary limits, write spacing and the content-creation budget.

GitHub's *secondary* limits are not in any header until they bite: at most 100
concurrent requests, a points-per-minute budget (writes cost more than reads),
and content creation (issues, comments) per minute and per hour. Its guidance
for integrators ("Best practices for using the REST API") is behavioural:
make mutations serially, at least one second apart; when refused with
``retry-after``, wait that long; without it, wait at least a minute, and
longer on repeats. No client library implements that, and it is what keeps a
token from being flagged, so it lives here.

Requests are grouped in *lanes* — ``read``, ``write``, ``search``, ``graphql``
— for their own spacing and budgets. A secondary limit, though, blocks the
whole **token** on GitHub's side (and in the simulator): once one read is
refused, a GraphQL query or a search sent next would be refused too, and would
count as a request sent into the block. So a secondary limit pauses **every
lane of the token** (:class:`Lanes` shares one :class:`TokenPause` among its
lanes): every caller waits, not just the one refused, for
``retry-after`` when the server gives it, else ``60 s × time_scale`` doubling
with each repeat (capped at 32 minutes), the repeat count forgotten after a
quiet spell of five base pauses. Refusals of requests that were sent before
the pause began are echoes of the same event: they may lengthen the pause to
their own ``retry-after`` but do not count as repeats.

Which of a 403 or 429 is a secondary limit only its body says, and other tasks
run while a body is read. So the client *holds* the token (:meth:`TokenPause.hold`)
from the status line of any 403/429 until the response is booked: no lane sends
in between, and once a refusal has been received nothing more is sent into it.
The aiohttp transport places the hold as the status line is read off the socket
(:meth:`TokenPause.hold_early`), turns of the event loop before the task that
asked sees its response.

The write lane also spaces mutations ``1 s × time_scale`` apart and keeps a
content-creation budget (GitHub documents 80 per minute and 500 per hour),
which halves whenever the write lane is refused and then recovers by a tenth of
its base per quiet minute: the server's limit is not published per token and
adapting is the only way to live under it.

Clocks are injected (epoch ``clock`` — pauses are shown to users as times —
and ``sleep``) so the schedules are tested without waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from engine.deferral import defer_if_long
from engine.models import LaneView

LANE_NAMES = ("read", "write", "search", "graphql")
SECONDARY_BASE_PAUSE_S = 60.0
MAX_PAUSE_DOUBLINGS = 5
QUIET_PAUSES = 5                   # repeats are forgotten after this many base pauses of calm
MUTATION_SPACING_S = 1.0
CONTENT_PER_MINUTE = 80
CONTENT_PER_HOUR = 500
CONTENT_RECOVERY_PER_MINUTE = 0.1  # share of the base budget regained per quiet minute
MAX_NAP_S = 0.5
EARLY_HOLD_S = 2.0                 # a transport's hold lapses if no task takes it over by then


class ContentBudget:
    """How many content-creating requests the write lane may send per (scaled) minute and hour."""

    def __init__(self, per_minute: float = CONTENT_PER_MINUTE, per_hour: int = CONTENT_PER_HOUR, *,
                 time_scale: float = 1.0) -> None:
        self.base = float(per_minute)
        self.per_hour = per_hour
        self.minute_s = 60.0 * time_scale
        self.hour_s = 3600.0 * time_scale
        self._cut_to: float | None = None
        self._cut_at = 0.0
        self._sent: deque[float] = deque()

    def per_minute(self, now: float) -> float:
        if self._cut_to is None:
            return self.base
        regained = self.base * CONTENT_RECOVERY_PER_MINUTE * max(0.0, now - self._cut_at) / self.minute_s
        value = min(self.base, self._cut_to + regained)
        if value >= self.base:
            self._cut_to = None
        return value

    def cut(self, now: float) -> None:
        """The server signalled a secondary limit: halve what we allow ourselves."""
        self._cut_to = max(1.0, self.per_minute(now) / 2)
        self._cut_at = now

    def wait_time(self, now: float) -> float:
        """0 when one more content-creating request may go now, else seconds to wait."""
        while self._sent and self._sent[0] <= now - self.hour_s:
            self._sent.popleft()
        waits = [0.0]
        if len(self._sent) >= self.per_hour:
            waits.append(self._sent[len(self._sent) - self.per_hour] + self.hour_s - now)
        allowed = max(1, int(self.per_minute(now)))
        in_minute = [t for t in self._sent if t > now - self.minute_s]
        if len(in_minute) >= allowed:
            waits.append(in_minute[len(in_minute) - allowed] + self.minute_s - now)
        return max(waits)

    def record(self, now: float) -> None:
        self._sent.append(now)

    def limit(self, per_minute: float, per_hour: int) -> None:
        """A cap of the caller's below the documented limits (a token shared with other tools)."""
        self.base = min(self.base, float(per_minute))
        self.per_hour = min(self.per_hour, int(per_hour))
        if self._cut_to is not None:
            self._cut_to = min(self._cut_to, self.base)


class TokenPause:
    """The secondary-limit pause of one token: every lane sharing it waits it out."""

    def __init__(self, base_pause_s: float) -> None:
        self.base_pause_s = base_pause_s
        self.paused_until: float | None = None
        self.pause_reason: str | None = None
        self.pause_started_at: float | None = None
        self.strikes = 0
        self._holds = 0
        self._early: deque[object] = deque()       # holds from the transport, not yet adopted
        self._released: asyncio.Event | None = None

    def paused(self, now: float) -> bool:
        return self._holds > 0 or (self.paused_until is not None and now < self.paused_until)

    @property
    def held(self) -> bool:
        return self._holds > 0

    def hold(self) -> None:
        """A response that may be a secondary refusal arrived: nobody sends until :meth:`release`.
        It takes over a hold the transport placed for the same status line, if one is pending."""
        if self._early:
            self._early.popleft()
            return
        self._acquire()

    def hold_early(self) -> None:
        """The transport read a 403/429 status line off a socket, before any task saw it. The
        task that asked takes the hold over (:meth:`hold`); if it never does (it gave up), the
        hold lapses after ``EARLY_HOLD_S``."""
        token = object()
        self._early.append(token)
        self._acquire()
        asyncio.get_running_loop().call_later(EARLY_HOLD_S, self._lapse, token)

    def _lapse(self, token: object) -> None:
        if token in self._early:
            self._early.remove(token)
            self.release()

    def _acquire(self) -> None:
        if self._holds == 0:
            self._released = asyncio.Event()
        self._holds += 1

    def release(self) -> None:
        """That response is booked (as a pause, or as not a limit at all)."""
        self._holds -= 1
        if self._holds == 0 and self._released is not None:
            self._released.set()

    async def wait_released(self) -> None:
        while self._holds > 0 and self._released is not None:
            await self._released.wait()

    def refused(self, retry_after: float | None, sent_at: float, now: float, reason: str) -> tuple[float, bool]:
        """Book a refusal; returns the pause in seconds and whether it is a new event (not an echo)."""
        echo = self.pause_started_at is not None and sent_at < self.pause_started_at
        if echo:
            duration = retry_after if retry_after is not None else 0.0
        else:
            calm_since = self.paused_until if self.paused_until is not None else now
            if now - calm_since > QUIET_PAUSES * self.base_pause_s:
                self.strikes = 0
            self.strikes += 1
            if retry_after is not None:
                duration = retry_after
            else:
                duration = self.base_pause_s * 2 ** min(self.strikes - 1, MAX_PAUSE_DOUBLINGS)
            self.pause_started_at = now
        self.paused_until = max(now + duration, self.paused_until or 0.0)
        self.pause_reason = reason
        return duration, not echo


class Lane:
    """One lane's mutation spacing, (write lane) content budget and view of the token's pause."""

    def __init__(
        self,
        name: str,
        *,
        time_scale: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        pause: TokenPause | None = None,
    ) -> None:
        self.name = name
        self._clock = clock
        self._sleep = sleep
        self.base_pause_s = SECONDARY_BASE_PAUSE_S * time_scale
        self.mutation_spacing_s = MUTATION_SPACING_S * time_scale
        self.content = ContentBudget(time_scale=time_scale) if name == "write" else None
        self.pause = pause if pause is not None else TokenPause(self.base_pause_s)
        self.in_flight = 0
        self._last_mutation_at: float | None = None
        # Mutations are admitted one at a time so the spacing holds even when the
        # pacer makes one of them wait (GitHub: make mutations serially).
        self.mutation_lock = asyncio.Lock()

    # -- pauses (the token's, shared with the other lanes) -----------------------------

    @property
    def paused_until(self) -> float | None:
        return self.pause.paused_until

    @property
    def pause_reason(self) -> str | None:
        return self.pause.pause_reason

    @property
    def strikes(self) -> int:
        return self.pause.strikes

    def paused(self, now: float | None = None) -> bool:
        return self.pause.paused(self._clock() if now is None else now)

    async def wait_while_paused(self) -> None:
        """Wait out the token's pause; inside a run's worker a long one raises
        :class:`~engine.deferral.DeferredUntil` instead (the worker takes other items)."""
        while True:
            if self.pause.held:
                await self.pause.wait_released()
                continue
            now = self._clock()
            until = self.pause.paused_until
            if until is None or not self.paused(now):
                return
            defer_if_long(f"{self.name} lane: {self.pause.pause_reason or 'paused'}", now, until - now)
            await self._sleep(min(until - now, MAX_NAP_S))

    def secondary_limit(self, retry_after: float | None, sent_at: float, reason: str = "secondary rate limit") -> float:
        """Pause the token's lanes after a secondary-limit refusal; returns the pause in seconds."""
        now = self._clock()
        duration, new_event = self.pause.refused(retry_after, sent_at, now, reason)
        if new_event and self.content is not None:
            self.content.cut(now)
        return duration

    # -- writes ------------------------------------------------------------------------

    async def wait_for_mutation_slot(self) -> None:
        while self._last_mutation_at is not None:
            wait = self._last_mutation_at + self.mutation_spacing_s - self._clock()
            if wait <= 0:
                return
            await self._sleep(min(wait, MAX_NAP_S))

    async def wait_for_content_budget(self) -> None:
        if self.content is None:
            return
        while (wait := self.content.wait_time(self._clock())) > 0:
            await self._sleep(min(wait, MAX_NAP_S))

    def record_sent(self, *, mutation: bool, creates_content: bool) -> float:
        now = self._clock()
        if mutation:
            self._last_mutation_at = now
        if creates_content and self.content is not None:
            self.content.record(now)
        self.in_flight += 1
        return now

    def record_done(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)

    def view(self) -> LaneView:
        now = self._clock()
        paused = self.paused(now)
        return LaneView(
            name=self.name,
            paused_until=self.paused_until if paused else None,
            pause_reason=self.pause_reason if paused else None,
            content_budget_per_min=self.content.per_minute(now) if self.content is not None else None,
            in_flight=self.in_flight,
        )


class Lanes:
    """The lanes of one token by name (an unknown name gets a lane of its own), sharing its pause."""

    def __init__(self, *, time_scale: float = 1.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self.pause = TokenPause(SECONDARY_BASE_PAUSE_S * time_scale)
        self._make = lambda name: Lane(name, time_scale=time_scale, clock=clock, sleep=sleep, pause=self.pause)
        self._lanes: dict[str, Lane] = {name: self._make(name) for name in LANE_NAMES}

    def get(self, name: str) -> Lane:
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = self._make(name)
        return lane

    def views(self) -> list[LaneView]:
        return [lane.view() for lane in self._lanes.values()]
