"""The primary-limit tracker and pacer: header parsing and the pacing maths, on a fake clock."""

from __future__ import annotations

import asyncio
import heapq
import math

import httpx
import pytest

from engine.github.ratelimit import (
    Bucket,
    RateHeaders,
    RateLimiter,
    Reservation,
    budget_outlook,
    parse_rate_headers,
)

T0 = 1_700_000_000.0


def test_parses_github_headers_case_insensitively():
    parsed = parse_rate_headers(httpx.Headers({
        "X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4990", "X-RateLimit-Used": "10",
        "X-RateLimit-Reset": "1700003600", "X-RateLimit-Resource": "core",
    }))
    assert parsed == RateHeaders(5000, 4990, 10, 1700003600.0, "core")


def test_parses_a_decimal_reset_and_a_plain_dict():
    parsed = parse_rate_headers({"X-RateLimit-Limit": "1000", "x-ratelimit-remaining": "0",
                                 "x-ratelimit-reset": "1700000007.25"})
    assert parsed is not None
    assert parsed.reset == 1700000007.25
    assert parsed.used == 1000          # derived from remaining when x-ratelimit-used is absent
    assert parsed.resource is None


@pytest.mark.parametrize("headers", [
    {},
    {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "59"},                     # no reset
    {"x-ratelimit-limit": "sixty", "x-ratelimit-remaining": "59", "x-ratelimit-reset": "1"},
    {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "59", "x-ratelimit-reset": "inf"},
])
def test_missing_or_garbled_headers_are_not_trusted(headers):
    assert parse_rate_headers(headers) is None


def _learn(bucket: Bucket, now: float, *, limit: int, used: int, reset: float) -> None:
    """Admit the probe and answer it."""
    assert bucket.try_reserve(now) == 0
    bucket.settle(Reservation(bucket.resource, bucket.window, now),
                  RateHeaders(limit, limit - used, used, reset, bucket.resource))


def test_an_unknown_bucket_admits_one_probe_then_waits_for_its_answer():
    bucket = Bucket("core", 0.8)
    assert bucket.try_reserve(T0) == 0
    assert bucket.try_reserve(T0) > 0           # second caller waits: nothing known yet
    bucket.settle(Reservation("core", 0, T0), RateHeaders(5000, 4999, 1, T0 + 3600, "core"))
    assert bucket.limit == 5000 and bucket.used == 1
    assert bucket.try_reserve(T0) == 0


def test_answers_without_rate_headers_mark_the_resource_untracked():
    bucket = Bucket("core", 0.8)
    assert bucket.try_reserve(T0) == 0
    bucket.settle(Reservation("core", 0, T0), None, ok_without_headers=True)
    assert all(bucket.try_reserve(T0) == 0 for _ in range(1000))


def test_in_flight_requests_count_against_the_allowance():
    bucket = Bucket("core", 0.5, reset_margin_s=0.01)
    _learn(bucket, T0, limit=10, used=1, reset=T0 + 1)    # budget 5, 1 used
    admitted = 0
    now = T0
    while now < T0 + 1.0:                                   # no answers arrive
        wait = bucket.try_reserve(now)
        if wait == 0:
            admitted += 1
        else:
            now += wait
    assert admitted == 4                                    # 1 + 4 pending = budget
    assert bucket.estimated_used() == 5


def test_stale_answers_from_an_ended_window_are_ignored():
    bucket = Bucket("core", 0.8, reset_margin_s=0.01)
    _learn(bucket, T0, limit=100, used=1, reset=T0 + 10)
    old = Reservation("core", bucket.window, T0)
    assert bucket.try_reserve(T0 + 10.5) == 0               # rolled: a probe of the new window
    bucket.settle(old, RateHeaders(100, 10, 90, T0 + 10, "core"))
    assert not bucket.known and bucket.used == 0            # the late answer taught nothing
    bucket.settle(Reservation("core", bucket.window, T0 + 10.5), RateHeaders(100, 99, 1, T0 + 20.5, "core"))
    assert bucket.known and bucket.used == 1 and bucket.reset_at == T0 + 20.5


def test_a_refusal_empties_the_bucket_until_its_reset():
    bucket = Bucket("core", 0.8, reset_margin_s=0.5)
    _learn(bucket, T0, limit=100, used=10, reset=T0 + 60)
    reservation = Reservation("core", bucket.window, T0)
    bucket.pending += 1
    bucket.refused(RateHeaders(100, 0, 100, T0 + 60, "core"), reservation)
    wait = bucket.try_reserve(T0 + 1)
    assert wait == pytest.approx(59.5)                      # until reset plus the margin
    assert bucket.try_reserve(T0 + 60.5) == 0               # then one probe of the new window
    assert bucket.try_reserve(T0 + 60.5) > 0


def test_a_server_clock_behind_ours_makes_the_pacer_wait_longer_after_resets():
    bucket = Bucket("core", 0.8, reset_margin_s=0.5)
    _learn(bucket, T0, limit=100, used=80, reset=T0 + 60)
    assert bucket.try_reserve(T0 + 61) == 0                 # our clock says the window rolled
    probe = Reservation("core", bucket.window, T0 + 61)
    bucket.settle(probe, RateHeaders(100, 19, 81, T0 + 60, "core"))   # the server says: not yet
    assert bucket.known and bucket.used == 81
    assert bucket.skew_s >= 1.0
    assert bucket.try_reserve(T0 + 61.2) > 0                # spent: wait, do not probe again at once


def simulate(*, limit: int, window: float, buffer: float, duration: float, concurrency: int,
             latency: float, other_consumer_per_s: float = 0.0, pacing: str = "finish",
             demand: float = math.inf) -> tuple[dict[float, int], list[float], Bucket]:
    """Drive a Bucket against a model of GitHub's fixed-window bucket, with infinite demand.

    Returns requests counted per server window (keyed by reset), the admission
    times and the bucket. ``demand`` caps the requests the job has. Raises if the server would have refused a request.
    """
    bucket = Bucket("core", buffer, reset_margin_s=window * 0.001, pacing=pacing)
    server_used, server_reset = 0, None
    per_window: dict[float, int] = {}
    admitted: list[float] = []
    answers: list[tuple[float, int, Reservation, RateHeaders]] = []
    seq = 0
    now = T0
    next_other = T0 + (1 / other_consumer_per_s if other_consumer_per_s else math.inf)

    def server_take(at: float) -> RateHeaders:
        nonlocal server_used, server_reset
        if server_reset is None or at >= server_reset:
            server_used, server_reset = 0, at + window
        if server_used >= limit:
            raise AssertionError(f"request at {at - T0:.3f}s would be refused")
        server_used += 1
        return RateHeaders(limit, limit - server_used, server_used, server_reset, "core")

    while now < T0 + duration:
        while answers and answers[0][0] <= now:
            _, _, reservation, headers = heapq.heappop(answers)
            bucket.settle(reservation, headers)
        while next_other <= now:
            if server_reset is None or next_other >= server_reset or server_used < limit:
                server_take(next_other)
            next_other += 1 / other_consumer_per_s
        wait = math.inf
        if len(answers) < concurrency and len(admitted) < demand:
            wait = bucket.try_reserve(now)
            if wait == 0:
                headers = server_take(now)
                per_window[headers.reset] = per_window.get(headers.reset, 0) + 1
                admitted.append(now)
                seq += 1
                heapq.heappush(answers, (now + latency, seq, Reservation("core", bucket.window, now), headers))
                continue
        now = min(now + wait, answers[0][0] if answers else math.inf, next_other)
    return per_window, admitted, bucket


@pytest.mark.parametrize("pacing", ["finish", "spread"])
@pytest.mark.parametrize(("concurrency", "latency"), [(1, 0.001), (20, 0.05), (50, 0.4)])
def test_never_plans_past_the_buffer_and_uses_nearly_all_of_it(concurrency, latency, pacing):
    per_window, _, _ = simulate(limit=1000, window=100.0, buffer=0.8, duration=450.0,
                                concurrency=concurrency, latency=latency, pacing=pacing)
    full_windows = sorted(per_window)[:-1]                  # the last one is cut off by the end
    assert len(full_windows) >= 3
    for reset in full_windows:
        assert 0.95 * 800 <= per_window[reset] <= 800, (reset - T0, per_window[reset])


def test_spread_pacing_spends_half_the_allowance_at_once_and_spreads_the_rest_over_the_window():
    per_window, admitted, bucket = simulate(limit=1000, window=100.0, buffer=0.8, duration=100.0,
                                            concurrency=20, latency=0.01, pacing="spread")
    first_reset = min(per_window)
    start = first_reset - 100.0
    tenths = [0] * 10
    for at in admitted:
        if at < first_reset:
            tenths[min(9, int((at - start) / 10.0))] += 1
    assert bucket.burst == 400
    # a small job (up to half the budget) goes at full speed: the burst lands in the first tenth...
    assert tenths[0] >= 400, tenths
    # ...and the other 400 are spread, about 40 a tenth, not spent at once then stalled on
    assert tenths[0] <= 400 + 40 + 5, tenths
    assert min(tenths[1:]) >= 30 and max(tenths[1:]) <= 50, tenths


def test_spread_pacing_shares_the_bucket_with_another_consumer_without_overdrawing_it():
    per_window, _, _ = simulate(limit=1000, window=100.0, buffer=0.8, duration=250.0,
                                concurrency=10, latency=0.05, other_consumer_per_s=2.0, pacing="spread")
    # our share plus the other consumer's ~200 stays within the buffer (the server never refused us)
    for reset in sorted(per_window)[:-1]:
        assert per_window[reset] <= 800 - 150


def test_finish_first_leaves_the_reserve_to_another_consumer():
    per_window, _, _ = simulate(limit=1000, window=100.0, buffer=0.8, duration=250.0,
                                concurrency=10, latency=0.05, other_consumer_per_s=2.0)
    # we spend at most the buffer (the server never refused us); the other 200 stay for the other user
    for reset in sorted(per_window)[:-1]:
        assert 700 <= per_window[reset] <= 800


async def test_rate_limiter_serves_waiters_in_order_and_reserves_before_sending(clock):
    limiter = RateLimiter(0.5, time_scale=0.001, clock=clock, sleep=clock.sleep)
    probe = await limiter.acquire("core")
    waiter = asyncio.ensure_future(limiter.acquire("core"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()                               # nothing known yet: only the probe goes
    limiter.settle(probe, RateHeaders(10, 9, 1, clock() + 10, "core"))
    second = await waiter
    assert second.window == probe.window
    grants = [await limiter.acquire("core") for _ in range(3)]
    assert limiter.bucket("core").estimated_used() == 5     # budget of 5: 1 used + 4 pending
    assert len(grants) == 3
    blocked = asyncio.ensure_future(limiter.acquire("core"))
    await asyncio.sleep(0)
    # the next admission has to wait for the reset 10 s away (on the fake clock)
    result = await blocked
    assert clock() >= probe.sent_at + 10
    assert result.window > probe.window


def test_answers_charged_to_another_resource_teach_that_resource():
    limiter = RateLimiter(0.8)
    bucket = limiter.bucket("core")
    assert bucket.try_reserve(T0) == 0
    reservation = Reservation("core", 0, T0)
    limiter.settle(reservation, RateHeaders(30, 29, 1, T0 + 60, "search"))
    assert limiter.bucket("search").limit == 30
    assert bucket.pending == 0
    gauges = {g.resource: g for g in limiter.gauges()}
    assert gauges["search"].remaining == 29 and gauges["search"].buffer == 0.8


def test_a_glimpse_of_an_unopened_window_ends_the_tracked_one_without_adopting_its_guess():
    bucket = Bucket("core", 0.8, reset_margin_s=0.01)
    _learn(bucket, T0, limit=100, used=50, reset=T0 + 10)
    straddler = Reservation("core", bucket.window, T0 + 9.99)
    bucket.pending += 1
    # answered after the reset: the server shows the next window, nothing counted in it yet
    bucket.settle(straddler, RateHeaders(100, 100, 0, T0 + 20.01, "core"))
    assert not bucket.known
    assert bucket.try_reserve(T0 + 10.005) == 0                  # a probe, not a full budget
    assert bucket.try_reserve(T0 + 10.005) > 0
    bucket.settle(Reservation("core", bucket.window, T0 + 10.005), RateHeaders(100, 98, 2, T0 + 20.0, "core"))
    assert bucket.known and bucket.reset_at == T0 + 20.0 and bucket.used == 2


def test_a_straddler_answered_after_the_next_window_was_learned_is_old_news():
    bucket = Bucket("core", 0.8, reset_margin_s=0.01)
    _learn(bucket, T0, limit=100, used=80, reset=T0 + 10)
    straddler = Reservation("core", bucket.window, T0 + 9.99)
    bucket.pending += 1
    assert bucket.try_reserve(T0 + 10.02) == 0                   # rolled: the probe of the next window
    bucket.settle(Reservation("core", bucket.window, T0 + 10.02), RateHeaders(100, 99, 1, T0 + 20.02, "core"))
    # now the straddler's late answer shows a guessed next window, nothing counted in it
    bucket.settle(straddler, RateHeaders(100, 100, 0, T0 + 20.05, "core"))
    assert bucket.known and bucket.reset_at == T0 + 20.02
    assert bucket.try_reserve(T0 + 10.03) == 0                    # full pace, no second probe
    assert bucket.try_reserve(T0 + 10.03) == 0


def test_answers_that_counted_nothing_still_teach_the_window():
    """A re-scan answered only by 304s (used stays 0) must not probe one request at a time."""
    bucket = Bucket("core", 0.8)
    now = T0
    assert bucket.try_reserve(now) == 0.0                 # the probe
    bucket.settle(Reservation("core", bucket.window, now), RateHeaders(5000, 5000, 0, now + 3600.0, "core"))
    waits = [bucket.try_reserve(now) for _ in range(50)]
    assert waits == [0.0] * 50                            # 50 concurrent requests admitted at once


def test_finish_first_sends_a_job_of_80_percent_of_the_budget_without_waiting():
    """The budget is 800; the job needs 640. Nothing holds it back but its own latency:
    20 callers at 10 ms finish in ~0.32 s of a 100 s window, and no request waits for the reset."""
    per_window, admitted, bucket = simulate(limit=1000, window=100.0, buffer=0.8, duration=200.0,
                                            concurrency=20, latency=0.01, demand=640)
    assert len(admitted) == 640 and len(per_window) == 1
    assert admitted[-1] - admitted[0] <= 640 / 20 * 0.01 + 0.05
    assert bucket.reset_waits == 0


def test_spread_pacing_makes_the_same_job_trickle_over_the_window():
    _, admitted, bucket = simulate(limit=1000, window=100.0, buffer=0.8, duration=200.0,
                                   concurrency=20, latency=0.01, demand=640, pacing="spread")
    assert len(admitted) == 640 and bucket.reset_waits == 0
    assert admitted[-1] - admitted[0] > 20.0                  # 240 requests spread at ~4/s


def test_finish_first_spends_the_budget_then_waits_once_for_the_reset():
    """1,200 requests against a budget of 800 a window: 800 at once, one wait, 400 after the reset."""
    per_window, admitted, bucket = simulate(limit=1000, window=100.0, buffer=0.8, duration=300.0,
                                            concurrency=20, latency=0.01, demand=1200)
    first, second = sorted(per_window)
    assert (per_window[first], per_window[second]) == (800, 400)
    assert bucket.reset_waits == 1
    gaps = [b - a for a, b in zip(admitted, admitted[1:], strict=False)]
    assert sum(gap > 1.0 for gap in gaps) == 1                # one wait...
    resumed = admitted[gaps.index(max(gaps)) + 1]
    assert first <= resumed <= first + 0.5                    # ...that ends at the reset


def test_budget_outlook_counts_windows_and_the_waits_they_imply():
    # fits in what is left: one window, no wait, sent at the rate
    o = budget_outlook(300, budget_left=500, budget_per_window=4000, now=0.0, reset_at=1800.0,
                       window_s=3600.0, rate_per_s=15.0)
    assert (o.windows, o.resets, o.wait_s, o.eta_s) == (1, 0, 0.0, pytest.approx(20.0))
    # 500 now (33.3 s), wait to the reset at 1800, 4000 in the next window (266.7 s), wait, 500 more
    o = budget_outlook(5000, budget_left=500, budget_per_window=4000, now=0.0, reset_at=1800.0,
                       window_s=3600.0, rate_per_s=15.0)
    assert (o.windows, o.resets) == (3, 2)
    assert o.wait_s == pytest.approx((1800 - 500 / 15) + (3600 - 4000 / 15))
    assert o.eta_s == pytest.approx(1800 + 3600 + 500 / 15)
    assert o.next_reset_at == 1800.0 and o.budget_left == 500
    # the budget is spent: the first request waits for the reset
    o = budget_outlook(10, budget_left=0, budget_per_window=4000, now=100.0, reset_at=160.0,
                       window_s=3600.0, rate_per_s=10.0)
    assert (o.windows, o.resets, o.wait_s, o.eta_s) == (1, 1, pytest.approx(60.0), pytest.approx(61.0))
    # no window open yet: the whole budget is there
    o = budget_outlook(4000, budget_left=0, budget_per_window=4000, now=0.0, reset_at=None,
                       window_s=3600.0, rate_per_s=100.0)
    assert (o.windows, o.resets, o.wait_s) == (1, 0, 0.0)
    assert budget_outlook(0, budget_left=0, budget_per_window=4000, now=0.0, reset_at=5.0,
                          window_s=3600.0, rate_per_s=1.0).windows == 0
