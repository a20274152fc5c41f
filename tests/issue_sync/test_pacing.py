"""The pace estimate replays the write lane's rules: per-minute budget, per-hour cap, one mutation a second."""

from __future__ import annotations

import pytest

from engine.jobs.issue_sync.pacing import Budget, finish_in, minimum_minutes


def test_the_hour_cap_dominates_a_large_sync():
    budget = Budget()
    assert finish_in(500, 0, budget) == pytest.approx(499.0)            # one a second, under 80 a minute
    assert finish_in(501, 0, budget) == pytest.approx(3600.0)           # the 501st waits for the hour
    assert finish_in(1040, 0, budget) == pytest.approx(7200 + 39)


def test_a_halved_budget_and_earlier_sends_push_the_finish_out():
    full, halved = Budget(), Budget(per_minute=40)
    assert finish_in(80, 0, halved) > finish_in(80, 0, full)
    sent_just_now = [float(t) for t in range(-499, 1)]                  # 500 in the last hour
    assert finish_in(1, 0, full, sent_just_now, now=0.0) == pytest.approx(3600 - 499)


def test_patches_are_spaced_and_time_is_scaled():
    assert finish_in(0, 10, Budget()) == pytest.approx(10.0)
    assert finish_in(501, 0, Budget(time_scale=0.001)) == pytest.approx(3.6)


def test_the_allowance_for_n_creates():
    assert minimum_minutes(80) == pytest.approx(79 / 80)
    assert minimum_minutes(1040) == pytest.approx(120 + 39 / 80)
