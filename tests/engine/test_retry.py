"""Retry policy: which failures come back, and when."""

from __future__ import annotations

import random

import pytest

from engine.config import AppConfig, BatchConfig, GitHubConfig
from engine.errors import (
    AuthError,
    ClientError,
    ErrorClass,
    NetworkError,
    RateLimitError,
    RequestTimeoutError,
    SecondaryRateLimitError,
    ServerError,
)
from engine.retry import DEFAULT_POLICIES, RetryPlanner

NO_JITTER_LOW = 0.0       # rng() == 0: equal jitter keeps exactly half the backoff
NO_JITTER_HIGH = 0.999999  # rng() ~ 1: the whole backoff


def planner(rng: float = NO_JITTER_HIGH, **batch) -> RetryPlanner:
    return RetryPlanner(BatchConfig(**{"retry_attempts": 10, **batch}), rng=lambda: rng)


@pytest.mark.parametrize("error_class,multiplier,cap", [
    (ErrorClass.RATE_LIMITED, 2.0, 60.0),
    (ErrorClass.NETWORK, 1.5, 10.0),
    (ErrorClass.SERVER, 2.0, 30.0),
    (ErrorClass.TIMEOUT, 1.2, 5.0),
])
def test_seed_defaults_grow_by_multiplier_up_to_cap(error_class, multiplier, cap):
    p = planner(retry_delay_base=1.0)
    delays = [p.decide(error_class, n).delay for n in range(10)]
    for n, d in enumerate(delays):
        assert d == pytest.approx(min(cap, multiplier ** n), rel=1e-5)
    assert max(delays) == pytest.approx(cap, rel=1e-5)
    assert delays == sorted(delays)


def test_secondary_limit_without_retry_after_waits_githubs_minute_scaled():
    p = RetryPlanner(AppConfig(batch=BatchConfig(retry_attempts=5), github=GitHubConfig(time_scale=0.01)),
                     rng=lambda: 0.0)
    d = p.decide(ErrorClass.SECONDARY_LIMITED, 0)
    assert d.retry and d.delay == pytest.approx(0.6)
    # backoff above the scaled minute takes over
    late = p.decide(ErrorClass.SECONDARY_LIMITED, 3)   # base 1 * 2**3 = 8 s, half kept = 4 s
    assert late.delay == pytest.approx(4.0)
    unscaled = RetryPlanner(BatchConfig(), rng=lambda: 0.0).decide(ErrorClass.SECONDARY_LIMITED, 0)
    assert unscaled.delay == pytest.approx(60.0)


def test_base_delay_comes_from_config():
    assert planner(retry_delay_base=2.5).decide(ErrorClass.SERVER, 1).delay == pytest.approx(5.0, rel=1e-5)


def test_equal_jitter_keeps_half_and_spreads_the_rest():
    low = planner(NO_JITTER_LOW).decide(ErrorClass.SERVER, 2).delay
    high = planner(NO_JITTER_HIGH).decide(ErrorClass.SERVER, 2).delay
    assert low == pytest.approx(2.0) and high == pytest.approx(4.0, rel=1e-5)
    rng = random.Random(7)
    p = RetryPlanner(BatchConfig(), rng=rng.random)
    samples = [p.decide(ErrorClass.SERVER, 2).delay for _ in range(200)]
    assert all(2.0 <= s <= 4.0 for s in samples)
    assert len({round(s, 3) for s in samples}) > 50       # spread, not one value


@pytest.mark.parametrize("exc", [ClientError("404", status_code=404), AuthError("bad credentials", status_code=401),
                                 ValueError("bug in a job kind")])
def test_client_auth_and_unexpected_are_not_retried(exc):
    d = planner().decide(exc, 0)
    assert not d.retry and d.delay == 0.0


def test_auth_is_fatal_even_with_retry_after():
    d = planner().decide(AuthError("bad credentials", status_code=401, retry_after=1), 0)
    assert not d.retry and "fatal" in d.reason


def test_retry_attempts_bounds_the_retries():
    p = RetryPlanner(BatchConfig(retry_attempts=3), rng=lambda: 0.5)
    assert [p.decide(ServerError("502"), n).retry for n in range(5)] == [True, True, True, False, False]
    assert "gave up after 3 retries" in p.decide(ServerError("502"), 3).reason
    assert not RetryPlanner(BatchConfig(retry_attempts=0)).decide(ErrorClass.NETWORK, 0).retry


def test_retry_after_on_the_error_wins_over_backoff():
    p = planner(NO_JITTER_HIGH)
    d = p.decide(SecondaryRateLimitError("abuse", retry_after=7), 0)
    assert d.retry and d.delay == 7.0 and "server" in d.reason
    # uncapped: the server's word beats the 5 s timeout cap too
    assert p.decide(RequestTimeoutError("slow", retry_after=42), 0).delay == 42.0


def test_explicit_retry_after_argument_wins():
    d = planner().decide(ErrorClass.SERVER, 4, retry_after=3)
    assert d.delay == 3.0
    assert planner().decide(ErrorClass.SERVER, 0, retry_after=-5).delay == 0.0


def test_primary_limit_waits_until_bucket_reset():
    p = RetryPlanner(BatchConfig(), rng=lambda: 0.0, wall=lambda: 1000.0)
    d = p.decide(RateLimitError("API rate limit exceeded", reset_time=1120.0), 0)
    assert d.retry and d.delay == pytest.approx(120.0)
    assert p.decide(RateLimitError("exceeded", reset_time=900.0), 0).delay == 0.0


def test_retry_after_does_not_make_unretryable_errors_retryable():
    assert not planner().decide(ClientError("422", status_code=422, retry_after=1), 0).retry


def test_exceptions_are_classified_like_their_class():
    p = planner(NO_JITTER_LOW)
    assert p.decide(NetworkError("reset"), 1).delay == p.decide(ErrorClass.NETWORK, 1).delay
    assert p.decide(TimeoutError(), 1).delay == p.decide(ErrorClass.TIMEOUT, 1).delay
    assert p.decide(ConnectionResetError(), 0).retry


def test_every_error_class_has_a_policy():
    assert set(DEFAULT_POLICIES) == set(ErrorClass)
