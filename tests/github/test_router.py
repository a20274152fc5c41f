"""Several orgs in one run, one App installation each: every request goes to its owner's client
and each org is paced by its own installation's buckets, in parallel. Two simulators (one org
and one installation each) in virtual time; the App key pair is generated here."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from engine.github import GitHubClient
from engine.github.app_auth import InstallationAuth
from engine.github.router import OwnerRouter
from engine.sim.app import create_app
from engine.sim.apps import generate_key_pair
from engine.sim.config import SimConfig
from tests.github.conftest import loop_epoch, run_in_virtual_time

SCALE = 0.01                           # a minute is 0.6 s
POINTS = 100                           # REST points a minute, low so that pacing binds


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return generate_key_pair()


def org_sim(org: str, installation_id: int, public: str):
    config = SimConfig(org=org, repos=5, seed=installation_id, time_scale=SCALE, secondary_points_per_minute=POINTS,
                       app={"id": 77, "public_key_pem": public, "installation_id": installation_id})
    app = create_app(config, clock=loop_epoch)
    base = f"http://{org}.sim"
    return app, base


def installation_client(app, base: str, org: str, private: str) -> GitHubClient:
    auth = InstallationAuth(77, private, org=org, clock=loop_epoch)
    return GitHubClient(base, transport=httpx.ASGITransport(app), time_scale=SCALE, clock=loop_epoch, auth=auth,
                        points_per_minute={"rest": POINTS, "graphql": 2000})


async def hammer(router: OwnerRouter, org: str, total: int) -> None:
    names = [r["name"] for r in await router.list_org_repos(org)]
    queue = list(range(total - 1))

    async def caller() -> None:
        while queue:
            i = queue.pop()
            await router.get_repo(org, names[i % len(names)])

    await asyncio.gather(*(caller() for _ in range(5)))


def test_each_org_goes_to_its_installation_and_is_paced_by_its_own_buckets(keys):
    private, public = keys

    async def main() -> None:
        (app_a, base_a), (app_b, base_b) = org_sim("acme", 9001, public), org_sim("beta", 9002, public)
        router = OwnerRouter({"acme": installation_client(app_a, base_a, "acme", private),
                              "beta": installation_client(app_b, base_b, "beta", private)})
        async with router:
            started = loop_epoch()
            await hammer(router, "acme", 270)                         # three minutes of points, alone
            alone = loop_epoch() - started
            await asyncio.sleep(60 * SCALE)                           # a fresh minute for both
            started = loop_epoch()
            await asyncio.gather(hammer(router, "acme", 270), hammer(router, "beta", 270))
            both = loop_epoch() - started
            mixed = await router.get_file_texts_graphql([("acme", "x", "HEAD:README.md"),
                                                         ("beta", "y", "HEAD:README.md")])
            gauges = {g.resource: g for g in router.rate_limits()}
        stats_a, stats_b = app_a.state.sim.stats, app_b.state.sim.stats
        # every request reached its own org's simulator and installation
        assert stats_a.requests["GET /repos/{o}/{r}"] == 2 * 269 and stats_b.requests["GET /repos/{o}/{r}"] == 269
        assert stats_a.statuses[404] == stats_b.statuses[404] == 0
        assert stats_a.graphql_queries == stats_b.graphql_queries == 1 and len(mixed) == 2
        assert {"acme core", "beta core"} <= set(gauges)
        assert router.budget_outlook(10, owner="beta").budget_left == gauges["beta core"].limit * 0.8 - 270
        assert stats_a.violations == stats_b.violations == 0
        assert stats_a.limit_responses["secondary"] == stats_b.limit_responses["secondary"] == 0
        # twice the work in parallel takes about as long as one org alone
        assert alone > 2 * 60 * SCALE * 0.9
        assert both <= 1.2 * alone, (alone, both)

    run_in_virtual_time(main)


def test_calls_that_name_no_owner_go_to_the_default_client(keys):
    private, public = keys

    async def main() -> None:
        (app_a, base_a), (app_b, base_b) = org_sim("acme", 9001, public), org_sim("beta", 9002, public)
        router = OwnerRouter({"acme": installation_client(app_a, base_a, "acme", private),
                              "beta": installation_client(app_b, base_b, "beta", private)}, default="beta")
        async with router:
            await router.request("GET", "/rate_limit")
            await router.request("GET", f"{base_a}/orgs/acme/repos")
        assert app_b.state.sim.stats.requests["GET /rate_limit"] == 1
        assert app_a.state.sim.stats.requests["GET /orgs/{org}/repos"] == 1

    run_in_virtual_time(main)
