"""How long the writes of a sync take under GitHub's content-creation limits.

The client's write lane does the pacing (one mutation at a time, 1 s apart,
an adaptive per-minute budget and the per-hour cap: ``engine.github.lanes``);
this module only *predicts*: the expected finish at the current pace (for the
headless progress and the console) and the dry run's estimate. It replays the
same rules over the creates still to send, starting from the ones already sent
in the last hour, so the estimate agrees with what the lane will actually do.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from engine.github.lanes import CONTENT_PER_HOUR, CONTENT_PER_MINUTE, MUTATION_SPACING_S


@dataclass(frozen=True)
class Budget:
    per_minute: float = CONTENT_PER_MINUTE
    per_hour: int = CONTENT_PER_HOUR
    time_scale: float = 1.0

    @property
    def minute_s(self) -> float:
        return 60.0 * self.time_scale

    @property
    def hour_s(self) -> float:
        return 3600.0 * self.time_scale

    @property
    def spacing_s(self) -> float:
        return MUTATION_SPACING_S * self.time_scale


def finish_in(creates: int, patches: int, budget: Budget, sent: Iterable[float] = (), now: float = 0.0) -> float:
    """Seconds until ``creates`` content-creating requests and ``patches`` other mutations are sent."""
    hour: deque[float] = deque(t for t in sorted(sent) if t > now - budget.hour_s)
    minute: deque[float] = deque(t for t in hour if t > now - budget.minute_s)
    allowed = max(1, int(budget.per_minute))
    t = now
    last = hour[-1] if hour else None
    for _ in range(creates):
        if last is not None:
            t = max(t, last + budget.spacing_s)
        if len(hour) >= budget.per_hour:
            t = max(t, hour[len(hour) - budget.per_hour] + budget.hour_s)
        if len(minute) >= allowed:
            t = max(t, minute[len(minute) - allowed] + budget.minute_s)
        while hour and hour[0] <= t - budget.hour_s:
            hour.popleft()
        while minute and minute[0] <= t - budget.minute_s:
            minute.popleft()
        hour.append(t)
        minute.append(t)
        last = t
    t += patches * budget.spacing_s
    return max(0.0, t - now)


def minimum_minutes(creates: int, per_minute: int = CONTENT_PER_MINUTE, per_hour: int = CONTENT_PER_HOUR) -> float:
    """The least time (minutes) GitHub's limits allow for ``creates`` creates (no spacing, full budget)."""
    if creates <= 0:
        return 0.0
    hours, rest = divmod(creates - 1, per_hour)
    return hours * 60.0 + rest / per_minute
