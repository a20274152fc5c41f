"""Circuit breaker: opens on a failure streak, probes, recovers, and shows it."""

from __future__ import annotations

import asyncio

import pytest

from engine.breaker import BreakerRegistry, BreakerState, CircuitBreaker
from engine.config import AppConfig, BatchConfig
from engine.errors import ErrorClass, ServerError


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


WALL0 = 1_700_000_000.0


def make(threshold=3, recovery=10.0, probes=1, **kw) -> tuple[CircuitBreaker, FakeClock]:
    """A breaker on a fake clock; its jitter is off (the middle of the range) unless ``rng`` is given."""
    kw.setdefault("rng", lambda: 0.5)
    clock = FakeClock()
    breaker = CircuitBreaker("read", threshold, recovery, probes, clock=clock,
                             wall=lambda: WALL0 + clock.t, **kw)
    return breaker, clock


def trip(b: CircuitBreaker, n: int | None = None, cls=ErrorClass.SERVER) -> None:
    for _ in range(n or b.threshold):
        b.record_failure(cls)


def test_opens_after_threshold_consecutive_counted_failures():
    b, _ = make(threshold=3)
    trip(b, 2)
    assert b.state is BreakerState.CLOSED and b.allow()
    b.record_failure(ErrorClass.TIMEOUT)
    assert b.state is BreakerState.OPEN
    assert not b.allow() and b.try_acquire() is None


def test_a_success_resets_the_streak():
    b, _ = make(threshold=3)
    trip(b, 2)
    b.record_success()
    trip(b, 2)
    assert b.state is BreakerState.CLOSED and b.failures == 2


@pytest.mark.parametrize("cls", [ErrorClass.CLIENT, ErrorClass.AUTH, ErrorClass.RATE_LIMITED,
                                 ErrorClass.SECONDARY_LIMITED, ErrorClass.UNEXPECTED])
def test_neutral_errors_neither_count_nor_reset(cls):
    b, _ = make(threshold=3)
    trip(b, 20, cls)
    assert b.state is BreakerState.CLOSED and b.failures == 0
    trip(b, 2)
    b.record_failure(cls)             # does not break the server-error streak
    b.record_failure(ErrorClass.NETWORK)
    assert b.state is BreakerState.OPEN


def test_exceptions_are_classified():
    b, _ = make(threshold=2)
    b.record_failure(ServerError("502", status_code=502))
    b.record_failure(ConnectionResetError())
    assert b.state is BreakerState.OPEN


def test_half_open_after_recovery_timeout_then_probe_success_closes():
    b, clock = make(recovery=10.0)
    trip(b)
    clock.advance(9.9)
    assert b.state is BreakerState.OPEN
    clock.advance(0.2)
    assert b.state is BreakerState.HALF_OPEN
    probe = b.try_acquire()
    assert probe is not None and probe.probe
    assert b.try_acquire() is None          # only one probe at a time
    probe.success()
    assert b.state is BreakerState.CLOSED and b.failures == 0
    assert b.allow() and b.allow()


def test_probe_failure_reopens_for_twice_as_long_up_to_the_cap():
    b, clock = make(recovery=10.0)
    trip(b)
    clock.advance(10)
    waits = []
    for _ in range(6):
        b.try_acquire().failure(ErrorClass.TIMEOUT)
        assert b.state is BreakerState.OPEN
        waits.append(b.view().next_probe_at - (WALL0 + clock.t))
        clock.advance(waits[-1])
        assert b.state is BreakerState.HALF_OPEN
    assert waits == [20.0, 40.0, 40.0, 40.0, 40.0, 40.0]       # doubled, capped at 4 x recovery
    b.try_acquire().success()
    trip(b)                                                      # closed again: back to the base
    assert b.view().next_probe_at - (WALL0 + clock.t) == 10.0


def test_recovery_is_jittered_between_half_and_one_and_a_half_times():
    draws = iter([0.0, 0.999])
    b, clock = make(recovery=10.0, rng=lambda: next(draws))
    trip(b)
    assert b.view().next_probe_at - (WALL0 + clock.t) == 5.0
    clock.advance(5)
    b.try_acquire().failure(ErrorClass.SERVER)
    assert b.view().next_probe_at - (WALL0 + clock.t) == pytest.approx(29.98)


def _scan_through_periodic_bursts(rng) -> int:
    """Ten simulated minutes of one caller every 0.1 s against a server that fails every
    call during the first 5 s of each 15 s; the calls that succeeded."""
    b, clock = make(threshold=5, recovery=30.0, probes=1, rng=rng)
    clock.t = 0.0
    succeeded = 0
    for _ in range(6000):
        permit = b.try_acquire()
        if permit is not None:
            if clock.t % 15.0 < 5.0:
                permit.failure(ErrorClass.SERVER)
            else:
                permit.success()
                succeeded += 1
        clock.advance(0.1)
    return succeeded


def test_jittered_recovery_makes_progress_through_periodic_error_bursts():
    import random

    aligned = _scan_through_periodic_bursts(lambda: 0.5)        # a fixed 30 s: every probe meets a burst
    jittered = _scan_through_periodic_bursts(random.Random(7).random)
    assert aligned == 0                       # the stall: every probe lands in a burst, nothing gets through
    assert jittered >= 400                    # probes land between bursts: the scan moves


def test_half_open_admits_at_most_the_configured_probes():
    b, clock = make(probes=2)
    trip(b)
    clock.advance(10)
    first, second = b.try_acquire(), b.try_acquire()
    assert first and second and b.try_acquire() is None
    first.release()                          # ended without outcome: slot freed
    assert b.try_acquire() is not None
    assert b.state is BreakerState.HALF_OPEN


def test_neutral_probe_outcome_frees_the_slot_without_closing():
    b, clock = make()
    trip(b)
    clock.advance(10)
    with b.try_acquire() as probe:
        probe.failure(ErrorClass.RATE_LIMITED)
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()


def test_cancelled_probe_does_not_wedge_half_open():
    b, clock = make()
    trip(b)
    clock.advance(10)
    with pytest.raises(asyncio.CancelledError), b.try_acquire():
        raise asyncio.CancelledError
    assert b.try_acquire() is not None


def test_stale_permits_cannot_close_or_reopen():
    b, clock = make(threshold=2)
    slow = b.try_acquire()                   # admitted while closed
    trip(b)
    clock.advance(10)
    assert b.state is BreakerState.HALF_OPEN
    slow.success()                           # from before the breaker opened
    assert b.state is BreakerState.HALF_OPEN
    probe = b.try_acquire()
    probe.success()
    late = b.try_acquire()
    assert b.state is BreakerState.CLOSED
    slow.failure(ErrorClass.SERVER)          # already reported: ignored
    late.failure(ErrorClass.SERVER)
    assert b.failures == 1 and b.state is BreakerState.CLOSED


def test_permitless_allow_and_record_drive_half_open():
    b, clock = make()
    trip(b)
    clock.advance(10)
    assert b.allow() and not b.allow()
    b.record_failure(ErrorClass.CLIENT)      # neutral: slot back
    assert b.allow()
    b.record_success()
    assert b.state is BreakerState.CLOSED


def test_view_shows_state_history_and_next_probe_in_wall_time():
    seen = []
    b, clock = make(threshold=2, recovery=10.0, on_transition=lambda lane, t: seen.append((lane, t.to_state)))
    trip(b)
    v = b.view()
    assert v.lane == "read" and v.state == "open" and v.failures == 2 and v.threshold == 2
    assert v.next_probe_at == pytest.approx(WALL0 + clock.t + 10.0)
    clock.advance(4)
    assert b.view().next_probe_at == pytest.approx(WALL0 + clock.t + 6.0)
    clock.advance(6)
    b.try_acquire().success()
    v = b.view()
    assert v.state == "closed" and v.next_probe_at is None
    assert [(t.from_state, t.to_state) for t in v.transitions] == [
        ("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert "2 consecutive failures" in v.transitions[0].reason
    assert v.transitions[0].at == pytest.approx(WALL0 + 100.0)
    assert seen == [("read", "open"), ("read", "half_open"), ("read", "closed")]


def test_history_is_bounded():
    b, clock = make(threshold=1, recovery=1.0)
    for _ in range(40):
        trip(b)
        clock.advance(1)
        b.try_acquire().success()
    assert len(b.view().transitions) == 50
    assert b.view().transitions[-1].to_state == "closed"


async def test_acquire_waits_while_open_and_wakes_when_half_open():
    b, clock = make(recovery=10.0)
    trip(b)
    waiter = asyncio.create_task(b.acquire())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    clock.advance(10)
    assert b.state is BreakerState.HALF_OPEN   # any state read wakes the waiters
    permit = await asyncio.wait_for(waiter, 1)
    assert permit.probe


async def test_acquire_in_half_open_queues_behind_the_probe():
    b, clock = make(recovery=10.0, probes=1)
    trip(b)
    clock.advance(10)
    probe = await b.acquire()
    others = [asyncio.create_task(b.acquire()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert not any(t.done() for t in others)
    probe.success()
    permits = await asyncio.wait_for(asyncio.gather(*others), 1)
    assert all(not p.probe for p in permits)


async def test_acquire_with_real_clock_waits_out_a_short_recovery():
    b = CircuitBreaker("write", threshold=1, recovery_timeout=0.05)
    b.record_failure(ErrorClass.NETWORK)
    assert b.state is BreakerState.OPEN
    permit = await asyncio.wait_for(b.acquire(), 2)
    assert permit.probe and b.state is BreakerState.HALF_OPEN


async def test_acquire_is_immediate_when_closed():
    b, _ = make()
    permit = await asyncio.wait_for(b.acquire(), 1)
    assert not permit.probe


def test_registry_creates_per_lane_breakers_from_config():
    clock = FakeClock()
    reg = BreakerRegistry(AppConfig(batch=BatchConfig(breaker_failure_threshold=2,
                                                      breaker_recovery_timeout=5.0,
                                                      breaker_half_open_probes=3)), clock=clock)
    read = reg.get("read")
    assert reg.get("read") is read
    assert (read.threshold, read.recovery_timeout, read.half_open_probes) == (2, 5.0, 3)
    reg.get("write")
    assert not reg.any_not_closed()
    trip(read)
    assert reg.any_not_closed()
    assert [(v.lane, v.state) for v in reg.views()] == [("read", "open"), ("write", "closed")]
    assert {b.lane for b in reg} == {"read", "write"}
    assert BreakerRegistry(BatchConfig()).get("x").threshold == 5
