"""GitHub's secondary limit on points per minute, paced ahead of time.

GitHub allows at most 900 points a minute on REST endpoints (a GET costs 1, a
write 5) and 2,000 on GraphQL; past that it refuses with a secondary limit and
blocks the token for a minute or more. The client keeps a sliding one-minute log
of what it sent and admits a request only while the last minute holds less than
``share`` (90%) of the limit: a job of a few hundred requests goes at once, a
long one at 90% of the limit a minute, and none is refused for this reason.

A leaky bucket (aiolimiter) cannot do both: its capacity plus a minute of drain
must stay under the limit, so it trades the burst against the sustained rate.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable


class PointsWindow:
    def __init__(self, per_minute: int, *, share: float = 0.9, time_scale: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self.capacity = max(1, int(per_minute * share))
        self.window = 60.0 * time_scale
        self._clock = clock
        self._sleep = sleep
        self._log: deque[tuple[float, int]] = deque()
        self._spent = 0

    def _expire(self, now: float) -> None:
        while self._log and self._log[0][0] <= now - self.window:
            self._spent -= self._log.popleft()[1]

    def spent(self) -> int:
        self._expire(self._clock())
        return self._spent

    async def acquire(self, points: int = 1) -> None:
        """Wait until ``points`` fit in the last minute, then count them as sent now."""
        points = min(points, self.capacity)
        while True:
            now = self._clock()
            self._expire(now)
            if self._spent + points <= self.capacity:
                self._log.append((now, points))
                self._spent += points
                return
            await self._sleep(max(self._log[0][0] + self.window - now, 1e-4))
