"""The client's pacing of GitHub's points-per-minute secondary limit (engine/github/points.py)."""

from __future__ import annotations

from engine.github.points import PointsWindow


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_a_short_job_goes_at_once_and_no_minute_exceeds_ninety_percent():
    clock = FakeClock()
    window = PointsWindow(900, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(3000):
        await window.acquire(1)
        sent.append(clock.now)
    assert sent[809] == 1000.0                      # the first 810 (90% of 900) without waiting
    for i, start in enumerate(sent):                # any minute holds at most 810
        in_minute = sum(1 for t in sent[i:i + 900] if t < start + 60.0)
        assert in_minute <= 810
    assert sent[-1] - sent[0] < 4 * 60.0            # and the long run keeps 810 a minute


async def test_writes_cost_five_points_and_time_scale_shrinks_the_minute():
    clock = FakeClock()
    window = PointsWindow(900, time_scale=0.01, clock=clock, sleep=clock.sleep)
    for _ in range(162):
        await window.acquire(5)
    assert clock.now == 1000.0 and window.spent() == 810
    await window.acquire(5)
    assert 1000.0 < clock.now <= 1000.6 + 1e-6      # waited for the oldest to leave a 0.6 s minute
