"""A wait for a reset (or a secondary-limit pause) gives its worker back: the items of an org
whose installation's budget is spent wait as pending rows, while the other org's items run.

The engine runs whole (feeder, workers, ledger, SQLite) against two in-process simulators, one
org and one bucket each, on an epoch clock the test moves: a reset an hour away arrives when
the test says so, never because the machine was slow."""

from __future__ import annotations

import asyncio
import functools
import time

import httpx
import pytest

import engine.api as api
from engine.deferral import DeferredUntil, deferring
from engine.github import GitHubClient
from engine.github.lanes import Lane
from engine.github.ratelimit import RateHeaders, RateLimiter
from engine.github.router import OwnerRouter
from engine.kinds import JobKind
from engine.models import PlannedItem, RunState
from engine.runner import Runner
from engine.sim.app import create_app
from engine.sim.config import SimConfig
from tests.github.conftest import EPOCH, FakeClock

from .conftest import fast_config

SPENT_LIMIT = 25          # acme's bucket: a budget of 20 (0.8 × 25) for its 30 items
A_ITEMS, B_ITEMS = 30, 30
WORKERS = 4


class ShiftedClock:
    """Epoch time the test can move forward (an hour passes when it says so)."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


class ListOrgs:
    """One GET of its org's repository listing per item; acme's items come first."""

    kind = "synthetic"

    def __init__(self, a_items: int, b_items: int) -> None:
        self.counts = {"acme": a_items, "beta": b_items}
        self.done: dict[str, int] = {"acme": 0, "beta": 0}

    async def plan(self, spec, ctx):
        for owner, n in self.counts.items():
            for i in range(n):
                yield PlannedItem(key=f"{owner}-{i:03d}", payload={"owner": owner}, lane="read")

    async def process(self, item, ctx):
        owner = item.payload["owner"]
        await ctx.github.request("GET", f"/orgs/{owner}/repos", params={"per_page": 1}, conditional=False)
        self.done[owner] += 1


def org_client(org: str, core_limit: int, clock: ShiftedClock) -> tuple[GitHubClient, object]:
    app = create_app(SimConfig(org=org, repos=2, seed=3, core_limit=core_limit), clock=clock)
    client = GitHubClient(f"http://{org}.sim", f"token-{org}", transport=httpx.ASGITransport(app), clock=clock,
                          points_per_minute=None)
    return client, app


@pytest.fixture
def shifted(monkeypatch) -> ShiftedClock:
    clock = ShiftedClock()
    monkeypatch.setattr(api, "Runner", functools.partial(Runner, clock=clock))
    return clock


def use_job(monkeypatch, job: ListOrgs) -> None:
    monkeypatch.setattr(api, "load_kind", lambda name: JobKind(name, processor=lambda: job))


async def until(condition, timeout: float = 60.0) -> None:
    """A generous deadline only as a safety net: the condition is what the run reaches."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never reached"
        await asyncio.sleep(0.01)


async def item_rows(engine, run_id: int, owner: str) -> list[tuple]:
    return await engine.store.fetchall("SELECT state, attempts, not_before FROM items WHERE run_id=? AND key LIKE ?",
                                       (run_id, f"{owner}-%"))


async def test_an_org_whose_budget_is_spent_frees_the_workers_for_the_other_org(engine, shifted, monkeypatch):
    """acme's bucket is spent after 20 of its 30 items, its reset an hour away; the 10 left
    outnumber the workers, so a worker holding a wait would stop the run: beta's items must all
    complete while acme's wait, and acme's once the hour has passed, with no attempt counted."""
    job = ListOrgs(A_ITEMS, B_ITEMS)
    use_job(monkeypatch, job)
    acme, acme_app = org_client("acme", SPENT_LIMIT, shifted)
    beta, beta_app = org_client("beta", 5000, shifted)
    config = fast_config(max_concurrent_requests=WORKERS)
    run_id = await engine.create_run("synthetic", {}, config)
    async with OwnerRouter({"acme": acme, "beta": beta}) as router:
        handle = await engine.start(run_id, github=router, config=config)
        await until(lambda: job.done["beta"] == B_ITEMS)
        await until(lambda: handle.runner.stats.deferrals == A_ITEMS - 20)
        assert job.done["acme"] == 20
        await handle.runner.recorder.flush()
        waiting = [row for row in await item_rows(engine, run_id, "acme") if row[0] != "done"]
        reset = acme.rate_limits()[0].reset_at
        assert len(waiting) == A_ITEMS - 20
        assert all(state == "pending" and attempts == 0 and not_before >= reset
                   for state, attempts, not_before in waiting)
        assert any(event.kind.value == "deferred" for event in handle.runner.events)

        shifted.shift += 3600 + 60                       # the hour passes: acme's bucket refills
        assert await asyncio.wait_for(handle.wait(), 60) is RunState.COMPLETED
    assert job.done == {"acme": A_ITEMS, "beta": B_ITEMS}
    rows = await item_rows(engine, run_id, "acme") + await item_rows(engine, run_id, "beta")
    assert [attempts for _, attempts, _ in rows] == [0] * (A_ITEMS + B_ITEMS)
    assert await engine.store.fetchall("SELECT * FROM attempts WHERE run_id=?", (run_id,)) == []
    assert handle.runner.stats.deferrals == A_ITEMS - 20          # each deferred once, no churn
    for app in (acme_app, beta_app):
        stats = app.state.sim.stats
        assert stats.violations == 0 and stats.limit_responses["primary"] == 0


@pytest.mark.parametrize("how", ["pause", "stop"])
async def test_a_run_whose_items_all_wait_for_a_reset_pauses_at_once_and_resumes_after_it(engine, shifted,
                                                                                            monkeypatch, how):
    """Nothing holds a worker during the wait, so pause (or SIGTERM's stop) ends at once; the
    deferred items are pending rows with their not_before, and a resume after the reset runs
    them: nothing lost, nothing run twice, no attempt counted."""
    job = ListOrgs(A_ITEMS, 0)
    use_job(monkeypatch, job)
    acme, acme_app = org_client("acme", SPENT_LIMIT, shifted)
    config = fast_config(max_concurrent_requests=WORKERS)
    run_id = await engine.create_run("synthetic", {}, config)
    async with acme:
        handle = await engine.start(run_id, github=acme, config=config)
        await until(lambda: handle.runner.stats.deferrals == A_ITEMS - 20)
        assert handle.runner.counts.in_flight == 0 and handle.runner.workers.busy == 0
        if how == "pause":
            await handle.runner.pause()
            assert handle.runner.state is RunState.PAUSED
            await handle.runner.stop()
        else:
            await handle.runner.stop("stopped by SIGTERM; resume to continue")
        assert await asyncio.wait_for(handle.wait(), 60) is RunState.PAUSED
        counts = await engine.store.counts(run_id)
        assert (counts.done, counts.pending, counts.in_flight) == (20, A_ITEMS - 20, 0)

        shifted.shift += 3600 + 60
        resumed = await engine.start(run_id, github=acme, config=config)
        assert await asyncio.wait_for(resumed.wait(), 60) is RunState.COMPLETED
    assert job.done == {"acme": A_ITEMS, "beta": 0}
    assert [attempts for _, attempts, _ in await item_rows(engine, run_id, "acme")] == [0] * A_ITEMS
    assert acme_app.state.sim.stats.violations == 0


# -- the client's side: which waits defer ----------------------------------------------------------

@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_a_spent_budget_defers_inside_a_worker_and_waits_outside(clock: FakeClock):
    limiter = RateLimiter(0.8, clock=clock, sleep=clock.sleep)
    limiter.settle(None, RateHeaders(limit=10, remaining=2, used=8, reset=EPOCH + 3600, resource="core"))
    with deferring(), pytest.raises(DeferredUntil) as deferred:
        await limiter.acquire("core")
    assert deferred.value.at == pytest.approx(EPOCH + 3600 + limiter.reset_margin_s)
    assert clock.now == EPOCH and limiter.bucket("core").pending == 0      # nothing slept, nothing reserved
    await limiter.acquire("core")                                           # outside a worker: waits for it
    assert clock.now >= EPOCH + 3600


async def test_a_short_wait_and_pacing_waits_stay_in_place(clock: FakeClock):
    limiter = RateLimiter(0.8, clock=clock, sleep=clock.sleep)
    limiter.settle(None, RateHeaders(limit=10, remaining=2, used=8, reset=EPOCH - 0.5, resource="core"))
    with deferring():
        await limiter.acquire("core")          # the reset is under a second away: slept, not deferred
    spread = RateLimiter(0.8, pacing="spread", clock=clock, sleep=clock.sleep)
    spread.settle(None, RateHeaders(limit=5000, remaining=5000, used=0, reset=clock.now + 3600, resource="core"))
    with deferring():
        for _ in range(2100):                  # past the burst: paced a few seconds apart, never deferred
            await spread.acquire("core")


async def test_a_long_secondary_limit_pause_defers_inside_a_worker(clock: FakeClock):
    lane = Lane("read", clock=clock, sleep=clock.sleep)
    lane.secondary_limit(60.0, sent_at=clock.now)
    with deferring(), pytest.raises(DeferredUntil) as deferred:
        await lane.wait_while_paused()
    assert deferred.value.at == pytest.approx(EPOCH + 60) and "read" in deferred.value.what
    await lane.wait_while_paused()
    assert clock.now >= EPOCH + 60


class BatchOfTwoOrgs(ListOrgs):
    """Whole batches mixing both orgs (one GraphQL query per owner, as ioc-scan's files): acme's
    part is answered by a deferral until the clock has passed its reset."""

    batch_lanes = frozenset({"read"})

    def __init__(self, a_items: int, b_items: int, clock: ShiftedClock) -> None:
        super().__init__(a_items, b_items)
        self.clock = clock
        self.reset_at = clock() + 3600

    async def process_batch(self, items, ctx):
        results: list[object] = []
        for item in items:
            owner = item.payload["owner"]
            if owner == "acme" and self.clock() < self.reset_at:
                results.append(DeferredUntil("acme core budget", self.reset_at, self.reset_at - self.clock()))
            else:
                self.done[owner] += 1
                results.append({"owner": owner})
        return results


async def test_a_batch_defers_only_the_items_of_the_spent_org(engine, shifted, monkeypatch):
    job = BatchOfTwoOrgs(20, 20, shifted)
    use_job(monkeypatch, job)
    config = fast_config(max_concurrent_requests=WORKERS)
    run_id = await engine.create_run("synthetic", {}, config)
    handle = await engine.start(run_id, config=config)
    await until(lambda: job.done["beta"] == 20 and handle.runner.stats.deferrals == 20)
    await handle.runner.recorder.flush()
    assert [row[0] for row in await item_rows(engine, run_id, "acme")] == ["pending"] * 20
    shifted.shift += 3600 + 60
    assert await asyncio.wait_for(handle.wait(), 60) is RunState.COMPLETED
    assert job.done == {"acme": 20, "beta": 20}
    rows = await item_rows(engine, run_id, "acme") + await item_rows(engine, run_id, "beta")
    assert [attempts for _, attempts, _ in rows] == [0] * 40
    assert handle.runner.counts.failed == 0


async def test_a_query_per_installation_defers_only_the_spent_installation():
    from engine.jobs.ioc_scan.fetch import per_client

    class Spent:
        async def answer(self, indexes):
            raise DeferredUntil("acme core budget", 0.0, 3600.0)

    class Fine:
        async def answer(self, indexes):
            return [f"answer {i}" for i in indexes]

    spent, fine = Spent(), Fine()

    class Router:
        def client_for(self, owner):
            return spent if owner == "acme" else fine

    out = await per_client(Router(), ["acme", "beta", "acme", "beta"],
                           lambda client, indexes: client.answer(indexes))
    assert isinstance(out[0], DeferredUntil) and isinstance(out[2], DeferredUntil)
    assert out[1::2] == ["answer 1", "answer 3"]
    with pytest.raises(DeferredUntil):          # nothing answered: the whole query waits
        await per_client(Router(), ["acme"], lambda client, indexes: client.answer(indexes))
