"""The client against the GitHub simulator (engine.sim): the behaviour users rely on,
judged by what the *server* saw (``GET /_sim/stats``), not by the client's own books."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from engine.errors import AuthError
from engine.github import GitHubClient, MemoryHttpCache
from engine.sim.app import create_app
from engine.sim.config import FaultConfig, SimConfig

TOKEN = "sim-token-for-tests"
BASE = "http://sim.test"


def in_process(config: SimConfig, token: str | None = TOKEN, **kw) -> tuple[GitHubClient, httpx.AsyncClient]:
    """A client on an in-process simulator, plus a side-door client for /_sim/*."""
    app = create_app(config)
    client = GitHubClient(BASE, token, transport=httpx.ASGITransport(app), **kw)
    side = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE)
    return client, side


async def stats(side: httpx.AsyncClient) -> dict:
    return (await side.get("/_sim/stats")).json()


class HeaderTap(httpx.AsyncBaseTransport):
    """Wraps a transport and keeps the rate headers of every response."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[tuple[int, httpx.Headers]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.seen.append((response.status_code, response.headers))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_pagination_over_1050_repos_returns_each_exactly_once():
    client, side = in_process(SimConfig(repos=1050, seed=7))
    async with client, side:
        repos = await client.list_org_repos("acme")
        seen = await stats(side)
    names = [r["full_name"] for r in repos]
    assert len(names) == 1050 and len(set(names)) == 1050
    assert seen["requests"]["GET /orgs/{org}/repos"] == 11          # ceil(1050 / 100)


async def test_a_304_costs_nothing_and_counts_a_saved_call():
    client, side = in_process(SimConfig(repos=3, seed=2), cache=MemoryHttpCache())
    async with client, side:
        name = (await client.list_org_repos("acme"))[0]["name"]
        first = await client.request("GET", f"/repos/acme/{name}")
        second = await client.request("GET", f"/repos/acme/{name}")
        seen = await stats(side)
    assert not first.from_cache and second.from_cache and second.data == first.data
    assert second.headers["x-ratelimit-remaining"] == first.headers["x-ratelimit-remaining"]
    assert seen["not_modified"] == 1 and seen["points_used"]["core"] == 2   # the listing and the first GET
    assert client.counters["api_requests_saved"] == 1


async def test_a_bad_token_stops_with_one_request_and_a_clear_message():
    client, side = in_process(SimConfig(repos=3, seed=2), token="bad-token")
    async with client, side:
        with pytest.raises(AuthError) as caught:
            await client.list_org_repos("acme")
        seen = await stats(side)
    assert seen["requests_total"] == 1 and seen["bad_credentials"] == 1
    assert str(caught.value) == f"GitHub rejected the token (401 Bad credentials) for {BASE}"
    assert "bad-token" not in str(caught.value) and "bad-token" not in repr(client)


async def test_a_truncated_tree_is_walked_completely():
    small = SimConfig(repos=40, seed=5, time_scale=0.01, faults=FaultConfig(truncate_tree_entries=60))
    whole = SimConfig(repos=40, seed=5, time_scale=0.01)
    walker, side = in_process(small, time_scale=0.01)
    reference, _ = in_process(whole, time_scale=0.01)
    async with walker, reference, side:
        repos = await reference.list_org_repos("acme")
        checked = 0
        for repo in repos:
            expected = await reference.get_tree("acme", repo["name"], repo["default_branch"])
            if len(expected) <= 60:
                continue
            raw = await walker.get_json(f"/repos/acme/{repo['name']}/git/trees/{repo['default_branch']}",
                                        {"recursive": 1})
            assert raw["truncated"] is True
            walked = await walker.get_tree("acme", repo["name"], repo["default_branch"])
            assert sorted((e["path"], e["type"], e["sha"]) for e in walked) == \
                sorted((e["path"], e["type"], e["sha"]) for e in expected)
            checked += 1
    assert checked >= 2


async def test_file_texts_by_graphql_match_the_blobs():
    client, side = in_process(SimConfig(repos=5, seed=4))
    async with client, side:
        repo = (await client.list_org_repos("acme"))[0]
        tree = await client.get_tree("acme", repo["name"], repo["default_branch"])
        blobs = [e for e in tree if e["type"] == "blob"][:3]
        asks = [("acme", repo["name"], f"HEAD:{b['path']}") for b in blobs]
        asks += [("acme", repo["name"], "HEAD:no/such/file"), ("acme", "no-such-repo", "HEAD:x")]
        texts = await client.get_file_texts_graphql(asks)
        for blob, text in zip(blobs, texts, strict=False):
            assert text == (await client.get_blob("acme", repo["name"], blob["sha"])).decode()
        seen = await stats(side)
    assert texts[3] is None
    assert isinstance(texts[4], Exception) and texts[4].status_code == 404
    assert seen["graphql_queries"] == 1


async def test_issues_write_search_and_update_through_their_lanes():
    client, side = in_process(SimConfig(repos=3, seed=2, time_scale=0.01), time_scale=0.01)
    async with client, side:
        name = (await client.list_org_repos("acme"))[0]["name"]
        created = [await client.create_issue("acme", name, f"IOC finding {i}", "lodash@4.17.20") for i in range(3)]
        await client.update_issue("acme", name, created[0]["number"], state="closed")
        open_issues = await client.list_issues("acme", name)
        found = await client.search_issues(f"repo:acme/{name} IOC finding")
        seen = await stats(side)
    assert {i["number"] for i in open_issues} == {c["number"] for c in created[1:]}
    assert {i["number"] for i in found} >= {c["number"] for c in created[1:]}
    assert seen["violations"] == 0 and seen["limit_responses"]["secondary"] == 0
    assert {g.resource for g in client.rate_limits()} >= {"core", "search"}


async def test_secondary_limits_pause_the_lane_and_every_request_still_completes():
    """The simulator imposes a secondary block at the 20th, 70th and 120th request (a fault
    by count: a points-per-time limit tripped only if the client was fast enough, which a loaded
    machine is not); callers in flight at a trip are refused too (GitHub counts them), but once
    refused the client sends nothing into the block."""
    config = SimConfig(repos=3, seed=3, time_scale=0.005, faults=FaultConfig(secondary_block_at=[20, 70, 120]))
    client, side = in_process(config, time_scale=0.005, limit_retries=8)
    concurrency = 6
    async with client, side:
        name = (await client.list_org_repos("acme"))[0]["name"]
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(150):
            queue.put_nowait(i)
        done: list[int] = []

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                done.append((await client.get_repo("acme", name))["id"])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seen = await stats(side)
    trips = sum(n for reason, n in seen["secondary_reasons"].items() if reason != "blocked")
    assert len(done) == 150
    assert seen["secondary_reasons"].get("forced", 0) >= 1
    assert trips >= 1 and client.counters["secondary_limited"] == seen["limit_responses"]["secondary"]
    # only requests already in flight when a trip happened may reach the block
    assert seen["secondary_reasons"].get("blocked", 0) <= (concurrency - 1) * trips
    assert seen["violations"] == 0          # nothing reached a block after its refusal was delivered
    assert seen["violations_by_kind"]["primary"] == 0


async def test_graphql_points_are_paced_like_rest():
    config = SimConfig(repos=2, seed=3, time_scale=0.001, graphql_limit=10)
    client, side = in_process(config, time_scale=0.001)
    async with client, side:
        name = (await client.list_org_repos("acme"))[0]["name"]
        for _ in range(12):                                   # 8 queries per window: crosses a reset
            texts = await client.get_file_texts_graphql([("acme", name, "HEAD:README.md")])
            assert len(texts) == 1
        seen = await stats(side)
    assert seen["graphql_queries"] == 12
    assert seen["violations"] == 0 and seen["limit_responses"]["primary"] == 0
