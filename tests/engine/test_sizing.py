"""Strategies and the adaptive sizer: starting points, growth, back-off, bounds."""

from __future__ import annotations

import random

import pytest

from engine.config import AppConfig, BatchConfig, BatchStrategy
from engine.errors import ErrorClass, InputError
from engine.sizing import PRESETS, BatchOutcome, BatchSizer

CFG = BatchConfig(max_concurrent_requests=20, default_batch_size=10, min_batch_size=2, max_batch_size=60)


def healthy(size: int = 10, p95_ms: float | None = 50.0) -> BatchOutcome:
    return BatchOutcome(size=size, succeeded=size, failed=0, p95_ms=p95_ms, headroom=0.9)


def burst(size: int = 10) -> BatchOutcome:
    """Half the batch failed with server errors."""
    return BatchOutcome(size=size, succeeded=size - size // 2, failed=size // 2,
                        errors={ErrorClass.SERVER: size // 2}, p95_ms=50.0, headroom=0.9)


@pytest.mark.parametrize("strategy,size,conc,pace", [
    ("sequential", 10, 1, 1.0),
    ("parallel", 10, 20, 1.0),
    ("adaptive", 10, 10, 1.0),
    ("aggressive", 60, 20, 1.0),
    ("conservative", 5, 5, 0.75),
])
def test_presets_start_where_documented(strategy, size, conc, pace):
    s = BatchSizer(CFG, strategy)
    assert (s.batch_size, s.concurrency, s.pace_factor) == (size, conc, pace)
    assert s.strategy is BatchStrategy(strategy)
    assert PRESETS[s.strategy].description


def test_defaults_to_the_configs_strategy_and_accepts_appconfig():
    s = BatchSizer(AppConfig(batch=BatchConfig(default_strategy="conservative")))
    assert s.strategy is BatchStrategy.CONSERVATIVE


def test_conservative_never_starts_below_min():
    cfg = BatchConfig(min_batch_size=4, default_batch_size=5, max_batch_size=10, max_concurrent_requests=2)
    s = BatchSizer(cfg, "conservative")
    assert s.batch_size == 4 and s.concurrency == 1


def test_grows_when_healthy():
    s = BatchSizer(CFG, "adaptive")
    for _ in range(5):
        d = s.on_batch_end(healthy())
    assert s.batch_size == 20 and s.concurrency == 15
    assert d.reason.startswith("grow")


def test_shrinks_multiplicatively_on_an_error_burst():
    s = BatchSizer(CFG, "adaptive")
    for _ in range(10):
        s.on_batch_end(healthy())
    big_size, big_conc = s.batch_size, s.concurrency
    d = s.on_batch_end(burst())
    assert (s.batch_size, s.concurrency) == (big_size // 2, big_conc // 2)
    assert "error rate 50%" in d.reason
    for _ in range(10):
        s.on_batch_end(burst())
    assert (s.batch_size, s.concurrency) == (CFG.min_batch_size, 1)


@pytest.mark.parametrize("outcome,why", [
    (BatchOutcome(10, 10, 0, {ErrorClass.TIMEOUT: 0}, 50.0, 0.1), "headroom"),
    (BatchOutcome(10, 10, 0, {}, 50.0, 0.9, breaker_open=True), "breaker"),
    (BatchOutcome(20, 19, 1, {ErrorClass.TIMEOUT: 1}, 50.0, 0.9), "timeouts"),
    (BatchOutcome(20, 19, 1, {ErrorClass.SECONDARY_LIMITED: 1}, 50.0, 0.9), "rate limited"),
])
def test_shrinks_on_each_kind_of_trouble(outcome, why):
    s = BatchSizer(CFG, "adaptive")
    d = s.on_batch_end(outcome)
    assert (s.batch_size, s.concurrency) == (5, 5) and why in d.reason


def test_a_few_errors_under_ten_percent_still_grow():
    s = BatchSizer(CFG, "adaptive")
    s.on_batch_end(BatchOutcome(20, 19, 1, {ErrorClass.SERVER: 1}, 50.0, 0.9))
    assert (s.batch_size, s.concurrency) == (12, 11)


def test_holds_when_latency_saturates():
    s = BatchSizer(CFG, "adaptive")
    s.on_batch_end(healthy(p95_ms=40.0))
    before = (s.batch_size, s.concurrency)
    d = s.on_batch_end(healthy(p95_ms=400.0))
    assert (s.batch_size, s.concurrency) == before and d.reason.startswith("hold")
    s.on_batch_end(healthy(p95_ms=45.0))
    assert s.batch_size > before[0]


def test_near_zero_latency_jitter_does_not_stall_growth():
    s = BatchSizer(CFG, "adaptive")
    s.on_batch_end(healthy(p95_ms=0.1))
    s.on_batch_end(healthy(p95_ms=2.0))
    assert s.history[-1].reason.startswith("grow")


def test_aggressive_ignores_low_headroom_but_backs_off_on_errors():
    s = BatchSizer(CFG, "aggressive")
    s.on_batch_end(BatchOutcome(60, 60, 0, {}, 50.0, headroom=0.05))
    assert (s.batch_size, s.concurrency) == (60, 20)
    s.on_batch_end(burst(60))
    assert (s.batch_size, s.concurrency) == (30, 10)
    s.on_batch_end(healthy(30))
    assert (s.batch_size, s.concurrency) == (32, 11)


@pytest.mark.parametrize("strategy", ["sequential", "parallel"])
def test_fixed_strategies_do_not_move(strategy):
    s = BatchSizer(CFG, strategy)
    start = (s.batch_size, s.concurrency)
    for outcome in [burst(), healthy(), burst(), BatchOutcome(10, 10, 0, {}, 9e9, 0.0, True)]:
        assert s.on_batch_end(outcome) is None
    assert (s.batch_size, s.concurrency) == start


def test_operator_override_is_clamped_and_sticks():
    s = BatchSizer(CFG, "adaptive")
    assert s.set_concurrency(999) == 20
    assert s.set_concurrency(0) == 1
    s.set_concurrency(7)
    for _ in range(3):
        s.on_batch_end(burst())
    for _ in range(3):
        s.on_batch_end(healthy())
    assert s.concurrency == 7 and s.concurrency_pinned
    assert s.batch_size != CFG.default_batch_size        # batch size still adapts
    s.set_concurrency(None)
    s.on_batch_end(burst())
    assert s.concurrency == 3


def test_override_works_for_fixed_strategies_too():
    s = BatchSizer(CFG, "sequential")
    s.set_concurrency(4)
    s.on_batch_end(healthy())
    assert s.concurrency == 4


def test_set_strategy_restarts_from_the_preset_and_rejects_unknown_names():
    s = BatchSizer(CFG, "adaptive")
    s.set_concurrency(3)
    s.set_strategy("PARALLEL")
    assert (s.strategy, s.batch_size, s.concurrency, s.concurrency_pinned) == (
        BatchStrategy.PARALLEL, 10, 20, False)
    with pytest.raises(InputError, match="unknown strategy 'turbo'; choose one of sequential"):
        s.set_strategy("turbo")
    assert s.strategy is BatchStrategy.PARALLEL


def test_history_keeps_recent_reasons_for_the_console():
    s = BatchSizer(CFG, "adaptive")
    s.on_batch_end(healthy())
    s.on_batch_end(burst())
    reasons = [d.reason for d in s.history]
    assert reasons[0] == "strategy adaptive" and reasons[1] == "grow: healthy"
    assert reasons[2].startswith("shrink: error rate")
    for _ in range(100):
        s.on_batch_end(healthy())
    assert len(s.history) == 30


@pytest.mark.parametrize("strategy", [s.value for s in BatchStrategy])
@pytest.mark.parametrize("seed", range(5))
def test_never_leaves_bounds_under_random_outcomes(strategy, seed):
    rng = random.Random(seed)
    cfg = BatchConfig(max_concurrent_requests=rng.randint(1, 50), min_batch_size=rng.randint(1, 10),
                      default_batch_size=10, max_batch_size=rng.randint(10, 200))
    s = BatchSizer(cfg, strategy)
    for _ in range(2000):
        if rng.random() < 0.02:
            s.set_concurrency(rng.randint(-5, 80))
        if rng.random() < 0.02:
            s.set_concurrency(None)
        size = s.batch_size
        failed = rng.choice([0, 0, 0, rng.randint(0, size)])
        errors = {rng.choice(list(ErrorClass)): failed} if failed else {}
        s.on_batch_end(BatchOutcome(
            size=size, succeeded=size - failed, failed=failed, errors=errors,
            p95_ms=rng.choice([None, rng.uniform(0, 5000)]),
            headroom=rng.choice([None, rng.random()]), breaker_open=rng.random() < 0.05))
        assert cfg.min_batch_size <= s.batch_size <= cfg.max_batch_size
        assert 1 <= s.concurrency <= cfg.max_concurrent_requests


def test_a_steady_five_percent_failure_rate_does_not_collapse_concurrency():
    """Batches of ten at a steady 5% failure rate: every other batch has one failure
    (10% on its own); judged over a window, the sizer keeps growing instead of halving."""
    s = BatchSizer(CFG, "adaptive")
    start = s.concurrency
    for i in range(40):
        failed = 1 if i % 2 else 0
        s.on_batch_end(BatchOutcome(10, 10 - failed, failed, {ErrorClass.SERVER: failed} if failed else {}, 20.0, 0.9))
    assert s.concurrency > start


def test_memory_pressure_shrinks_like_any_other_trouble():
    s = BatchSizer(CFG, "adaptive")
    for _ in range(5):
        s.on_batch_end(healthy())
    before = (s.batch_size, s.concurrency)
    d = s.on_batch_end(BatchOutcome(10, 10, 0, {}, 20.0, 0.9, memory_pressure=True))
    assert (s.batch_size, s.concurrency) == (before[0] // 2, before[1] // 2) and "memory" in d.reason
