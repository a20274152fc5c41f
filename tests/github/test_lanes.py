"""Lanes on a fake clock: secondary-limit pauses, write spacing, the content-creation budget."""

from __future__ import annotations

import asyncio

import pytest

from engine.github.lanes import EARLY_HOLD_S, ContentBudget, Lane, Lanes
from tests.github.conftest import EPOCH, run_in_virtual_time


def make_lane(clock, name: str = "read", time_scale: float = 1.0) -> Lane:
    return Lane(name, time_scale=time_scale, clock=clock, sleep=clock.sleep)


def test_retry_after_pauses_the_lane_for_exactly_that_long(clock):
    lane = make_lane(clock)
    assert lane.secondary_limit(7.0, sent_at=clock()) == 7.0
    assert lane.paused(clock() + 6.9)
    assert not lane.paused(clock() + 7.0)
    view = lane.view()
    assert view.paused_until == clock() + 7.0 and "secondary" in view.pause_reason


def test_without_retry_after_the_pause_is_a_scaled_minute_doubling_on_repeats(clock):
    lane = make_lane(clock, time_scale=0.01)               # a minute is 0.6 s
    pauses = []
    for _ in range(8):
        pauses.append(lane.secondary_limit(None, sent_at=clock()))
        clock.now = lane.paused_until + 0.01                 # the next request after the pause is refused again
    assert pauses == pytest.approx([0.6, 1.2, 2.4, 4.8, 9.6, 19.2, 19.2, 19.2])


def test_repeats_are_forgotten_after_a_quiet_spell(clock):
    lane = make_lane(clock, time_scale=0.01)
    lane.secondary_limit(None, sent_at=clock())
    clock.now = lane.paused_until + 0.01
    assert lane.secondary_limit(None, sent_at=clock()) == pytest.approx(1.2)
    clock.now = lane.paused_until + 5 * 0.6 + 0.01           # five base pauses of calm
    assert lane.secondary_limit(None, sent_at=clock()) == pytest.approx(0.6)


def test_refusals_of_requests_sent_before_the_pause_are_echoes_not_repeats(clock):
    lane = make_lane(clock, time_scale=0.01)
    sent = clock()
    clock.now += 0.001
    lane.secondary_limit(None, sent_at=sent)                 # first refusal starts the pause
    until = lane.paused_until
    for _ in range(19):                                      # nineteen siblings in flight refused too
        lane.secondary_limit(None, sent_at=sent)
    assert lane.strikes == 1 and lane.paused_until == until
    lane.secondary_limit(5.0, sent_at=sent)                  # an echo may lengthen the pause
    assert lane.paused_until == pytest.approx(clock() + 5.0)
    assert lane.strikes == 1


async def test_every_caller_of_a_paused_lane_waits_until_the_pause_ends(clock):
    lane = make_lane(clock)
    lane.secondary_limit(30.0, sent_at=clock())
    end = lane.paused_until
    released: list[float] = []

    async def caller():
        await lane.wait_while_paused()
        released.append(clock())

    await asyncio.gather(*(caller() for _ in range(10)))
    assert len(released) == 10 and min(released) >= end


async def test_mutations_are_spaced_a_scaled_second_apart(clock):
    lane = make_lane(clock, "write", time_scale=0.5)
    sent = []
    for _ in range(5):
        async with lane.mutation_lock:
            await lane.wait_for_mutation_slot()
            sent.append(lane.record_sent(mutation=True, creates_content=False))
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert all(gap >= 0.5 - 1e-9 for gap in gaps), gaps


def test_content_budget_allows_its_per_minute_quota_then_waits(clock):
    budget = ContentBudget(per_minute=5, per_hour=500, time_scale=1.0)
    for _ in range(5):
        assert budget.wait_time(clock()) == 0
        budget.record(clock())
        clock.now += 1
    assert budget.wait_time(clock()) == pytest.approx(60 - 5)   # the oldest leaves the minute at t=60


def test_content_budget_respects_the_hourly_quota(clock):
    budget = ContentBudget(per_minute=80, per_hour=3, time_scale=1.0)
    for _ in range(3):
        budget.record(clock())
        clock.now += 61
    assert budget.wait_time(clock()) == pytest.approx(3600 - 3 * 61)


def test_content_budget_halves_on_a_secondary_limit_and_recovers_slowly(clock):
    lane = make_lane(clock, "write", time_scale=1.0)
    assert lane.view().content_budget_per_min == 80
    lane.secondary_limit(None, sent_at=clock())
    assert lane.view().content_budget_per_min == 40
    clock.now = lane.paused_until + 1
    lane.secondary_limit(None, sent_at=clock())
    halved_twice = lane.view().content_budget_per_min
    assert halved_twice == pytest.approx((40 + 8 * 61 / 60) / 2)   # it had regained a little meanwhile
    clock.now += 60
    assert lane.view().content_budget_per_min == pytest.approx(halved_twice + 8)   # a tenth of 80 per minute
    clock.now += 3600
    assert lane.view().content_budget_per_min == 80


def test_a_read_lane_has_no_content_budget_and_unknown_lanes_are_created():
    lanes = Lanes()
    views = {v.name: v for v in lanes.views()}
    assert set(views) == {"read", "write", "search", "graphql"}
    assert views["read"].content_budget_per_min is None
    assert lanes.get("contents").name == "contents"


def test_a_secondary_limit_on_one_lane_pauses_every_lane_of_the_token(clock):
    """GitHub blocks the token, not the kind of request: a GraphQL query or a search sent after a
    read was refused would be sent into the block."""
    lanes = Lanes(time_scale=0.01, clock=clock, sleep=clock.sleep)
    lanes.get("read").secondary_limit(3.0, sent_at=clock())
    assert all(lanes.get(name).paused() for name in ("read", "write", "search", "graphql", "custom"))
    assert {view.paused_until for view in lanes.views()} == {clock() + 3.0}
    clock.now += 3.0
    assert not any(lanes.get(name).paused() for name in ("read", "graphql"))


async def test_a_403_being_read_holds_every_lane_until_it_is_booked(clock):
    """From a 403/429's status line (placed by the transport, taken over by the task that asked)
    until the response is booked, no lane of the token may send."""
    lanes = Lanes(time_scale=0.01, clock=clock, sleep=clock.sleep)
    lanes.pause.hold_early()                  # the transport read the status line
    lanes.pause.hold()                        # the task that asked sees it: takes the hold over
    assert all(lanes.get(name).paused() for name in ("read", "graphql", "search"))
    waiting = asyncio.create_task(lanes.get("graphql").wait_while_paused())
    await asyncio.sleep(0)
    assert not waiting.done()
    lanes.get("read").secondary_limit(3.0, sent_at=clock())   # booked: a secondary limit ...
    lanes.pause.release()                                       # ... then the hold is let go
    await waiting
    assert clock() >= EPOCH + 3.0                               # it waited out the pause too
    assert not lanes.pause.held


def test_a_transport_hold_that_no_task_takes_over_lapses():
    """The task that asked gave up (timeout, cancel) before it saw the 403: the hold ends anyway."""
    async def main() -> float:
        lanes = Lanes()
        lanes.pause.hold_early()
        assert lanes.get("read").paused()
        await lanes.get("read").wait_while_paused()
        return asyncio.get_running_loop().time()

    assert run_in_virtual_time(main) >= EARLY_HOLD_S
