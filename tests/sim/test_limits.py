"""Primary and secondary rate limits, conditional requests, credentials, time scaling."""

from __future__ import annotations

import asyncio
import math
from types import SimpleNamespace

import pytest

from engine.errors import InputError
from engine.sim import app as app_module
from engine.sim.config import FaultConfig, SimConfig
from engine.sim.limits import RateLimiter, identity_for

RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-used", "x-ratelimit-reset",
                "x-ratelimit-resource")


def rate(r) -> tuple[int, int, int]:
    return (int(r.headers["x-ratelimit-limit"]), int(r.headers["x-ratelimit-remaining"]),
            int(r.headers["x-ratelimit-used"]))


async def stats(c) -> dict:
    return (await c.get("/_sim/stats")).json()


# ---------------------------------------------------------------------------
# primary

async def test_headers_on_every_response_and_consistent(client):
    seen = []
    for path in ("/repos/acme/web", "/repos/acme/nope", "/orgs/acme/repos", "/no/such/thing"):
        r = await client.get(path)
        assert all(h in r.headers for h in RATE_HEADERS) and r.headers["x-github-request-id"]
        limit, remaining, used = rate(r)
        assert limit == 5000 and remaining + used == limit and r.headers["x-ratelimit-resource"] == "core"
        seen.append((remaining, used, r.headers["x-ratelimit-reset"]))
    assert [s[0] for s in seen] == [4999, 4998, 4997, 4996]         # 404s count too, as on GitHub
    assert [s[1] for s in seen] == [1, 2, 3, 4]
    assert len({s[2] for s in seen}) == 1 and seen[0][2].isdigit()   # one window, integer epoch
    ids = set()
    for _ in range(3):
        ids.add((await client.get("/rate_limit")).headers["x-github-request-id"])
    assert len(ids) == 3


async def test_empty_bucket_gets_403_with_githubs_message_and_violations_are_counted(make_client, clock):
    async with make_client(config=SimConfig(core_limit=3)) as c:
        for expected in (2, 1, 0):
            r = await c.get("/repos/acme/web")
            assert r.status_code == 200 and rate(r)[1] == expected
        reset = int(r.headers["x-ratelimit-reset"])
        assert reset == math.ceil(clock.now + 3600)
        refused = await c.get("/repos/acme/web")
        assert refused.status_code == 403
        assert refused.json()["message"].startswith("API rate limit exceeded for user ID ")
        assert refused.json()["documentation_url"].startswith("https://docs.github.com/rest")
        assert rate(refused) == (3, 0, 3) and refused.headers["x-ratelimit-reset"] == str(reset)
        await c.get("/repos/acme/web")            # a client that keeps going
        s = await stats(c)
        assert s["violations"] == 2 and s["limit_responses"]["primary"] == 2 and s["points_used"]["core"] == 3
        limits = (await c.get("/rate_limit")).json()      # /rate_limit still answers and costs nothing
        assert limits["resources"]["core"] == {"limit": 3, "used": 3, "remaining": 0, "reset": reset}
        clock.now = reset
        again = await c.get("/repos/acme/web")
        assert again.status_code == 200 and rate(again) == (3, 2, 1)
        assert int(again.headers["x-ratelimit-reset"]) == math.ceil(clock.now + 3600)


async def test_buckets_are_per_token_and_anonymous_callers_get_60_by_ip(make_client):
    async with make_client(config=SimConfig(core_limit=2)) as c:
        for _ in range(2):
            await c.get("/repos/acme/web")
        assert (await c.get("/repos/acme/web")).status_code == 403
        other = await c.get("/repos/acme/web", headers={"Authorization": "Bearer another-token"})
        assert other.status_code == 200 and rate(other) == (2, 1, 1)
    async with make_client(headers={}) as anon:
        r = await anon.get("/repos/acme/web")
        assert rate(r) == (60, 59, 1)
        for _ in range(59):
            await anon.get("/repos/acme/web")
        refused = await anon.get("/repos/acme/web")
        assert refused.status_code == 403
        assert refused.json()["message"].startswith("API rate limit exceeded for 127.0.0.1.")
        authed = await anon.get("/repos/acme/web", headers={"Authorization": "token t"})
        assert authed.status_code == 200 and rate(authed)[0] == 5000


async def test_bad_token_gets_401_bad_credentials(make_client):
    async with make_client(headers={"Authorization": "token bad-token"}) as c:
        r = await c.get("/repos/acme/web")
        assert r.status_code == 401 and r.json()["message"] == "Bad credentials"
        assert r.json()["documentation_url"].startswith("https://docs.github.com/")
        assert rate(r)[0] == 60                    # the anonymous bucket's headers
        assert (await c.get("/rate_limit", headers={"Authorization": "Basic abc"})).status_code == 401
        assert (await stats(c))["bad_credentials"] == 2
    config = SimConfig(invalid_tokens=["revoked"])
    async with make_client(config=config, headers={"Authorization": "token revoked"}) as c:
        assert (await c.get("/repos/acme/web")).status_code == 401


async def test_search_has_its_own_per_minute_bucket(make_client, clock):
    async with make_client(config=SimConfig(search_limit=2)) as c:
        for _ in range(2):
            r = await c.get("/search/issues", params={"q": "repo:acme/web x"})
            assert r.status_code == 200
        assert r.headers["x-ratelimit-resource"] == "search"
        assert float(r.headers["x-ratelimit-reset"]) <= clock.now + 61
        assert (await c.get("/search/issues", params={"q": "x"})).status_code == 403
        core = await c.get("/repos/acme/web")
        assert core.status_code == 200 and rate(core) == (5000, 4999, 1)
        clock.advance(61)
        assert (await c.get("/search/issues", params={"q": "x"})).status_code == 200


# ---------------------------------------------------------------------------
# conditional requests

async def test_304_is_free_for_tokens_and_carries_no_body(client):
    first = await client.get("/repos/acme/web")
    etag = first.headers["etag"]
    assert etag.startswith('W/"') and "last-modified" in first.headers
    remaining = rate(first)[1]
    for _ in range(3):
        cached = await client.get("/repos/acme/web", headers={"If-None-Match": etag})
        assert cached.status_code == 304 and cached.content == b"" and cached.headers["etag"] == etag
        assert rate(cached)[1] == remaining
    by_date = await client.get("/repos/acme/web", headers={"If-Modified-Since": first.headers["last-modified"]})
    assert by_date.status_code == 304
    stale = await client.get("/repos/acme/web", headers={"If-None-Match": '"something-else"'})
    assert stale.status_code == 200 and rate(stale)[1] == remaining - 1
    blob_sha = (await client.get("/repos/acme/web/git/trees/main")).json()["tree"][0]["sha"]
    blob = await client.get(f"/repos/acme/web/git/blobs/{blob_sha}")
    assert blob.headers["etag"] == f'"{blob_sha}"'                      # content-addressed: a strong tag
    assert (await client.get(f"/repos/acme/web/git/blobs/{blob_sha}",
                             headers={"If-None-Match": blob.headers["etag"]})).status_code == 304
    s = await stats(client)
    assert s["not_modified"] == 5 and s["blob_fetches"] == {blob_sha: 1}


async def test_304_still_counts_for_anonymous_callers(make_client):
    async with make_client(headers={}) as c:
        first = await c.get("/repos/acme/web")
        cached = await c.get("/repos/acme/web", headers={"If-None-Match": first.headers["etag"]})
        assert cached.status_code == 304 and rate(cached)[1] == rate(first)[1] - 1


# ---------------------------------------------------------------------------
# secondary

async def test_more_than_100_concurrent_requests_trip_the_secondary_limit(make_client, monkeypatch):
    gate = asyncio.Event()

    async def held(_seconds: float) -> None:     # requests stay in flight until the test lets them go
        await gate.wait()

    monkeypatch.setattr(app_module, "asyncio", SimpleNamespace(sleep=held))
    config = SimConfig(secondary_status="403", secondary_retry_after="always")
    config.faults.latency_ms = 1
    async with make_client(config=config) as c:
        tasks = [asyncio.create_task(c.get("/repos/acme/web")) for _ in range(130)]
        state = c.app.state.sim
        while state.stats.requests_total < 130:
            await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*tasks)
        codes = [r.status_code for r in results]
        assert codes.count(200) == 100 and codes.count(403) == 30
        refused = [r for r in results if r.status_code == 403]
        assert all("secondary rate limit" in r.json()["message"] for r in refused)
        assert all(float(r.headers["retry-after"]) == 60 for r in refused)
        s = await stats(c)
        assert s["peak_concurrency"] == 101        # refused requests leave at once
        assert s["secondary_reasons"] == {"concurrency": 1, "blocked": 29}
        # in-process, each of the 29 arrived after the 101st had its refusal delivered
        assert s["violations"] == 29 and s["in_flight_at_block"] == 0
        assert (await c.get("/repos/acme/web")).status_code == 403   # the block outlasts the burst


async def test_only_requests_sent_after_a_refusal_was_delivered_are_violations(make_client, kit):
    """A request that reaches a block before any refusal of it has gone out was on the wire
    before the client could know: counted as in flight at the block, not as a violation. One
    that arrives once a refusal was delivered is a violation."""
    config = SimConfig(secondary_points_per_minute=1, secondary_retry_after="always", secondary_status="403")
    app = make_client(config=config).app
    body_gate = asyncio.Event()
    refusal_started = asyncio.Event()

    async def first_refusal_held(scope, receive, send):     # its status line goes out, its body waits
        async def gated(message):
            if message["type"] == "http.response.start" and message["status"] == 403 and \
                    not refusal_started.is_set():
                refusal_started.set()
                await send(message)
                await body_gate.wait()
                return
            await send(message)
        await app(scope, receive, gated)

    async with kit.client_for(first_refusal_held, headers=kit.TOKEN) as c:
        assert (await c.get("/repos/acme/web")).status_code == 200      # the minute's only point
        trip = asyncio.create_task(c.get("/repos/acme/web"))
        await refusal_started.wait()
        assert (await c.get("/repos/acme/web")).status_code == 403      # in flight as the block began
        s = await stats(c)
        assert s["secondary_reasons"] == {"points": 1, "blocked": 1}
        assert s["violations"] == 0 and s["in_flight_at_block"] == 1
        body_gate.set()
        assert (await trip).status_code == 403
        assert (await c.get("/repos/acme/web")).status_code == 403      # sent after the refusal arrived
        s = await stats(c)
        assert s["violations"] == 1 and s["violations_by_kind"]["secondary"] == 1 and s["in_flight_at_block"] == 1


async def test_a_fault_imposes_a_secondary_block_at_the_nth_request(make_client):
    config = SimConfig(secondary_retry_after="always", faults=FaultConfig(secondary_block_at=[2]))
    async with make_client(config=config) as c:
        assert (await c.get("/repos/acme/web")).status_code == 200
        forced = await c.get("/repos/acme/web")
        assert forced.status_code in (403, 429) and "secondary rate limit" in forced.json()["message"]
        assert (await c.get("/repos/acme/web")).status_code in (403, 429)     # the block holds
        s = await stats(c)
        assert s["secondary_reasons"] == {"forced": 1, "blocked": 1} and s["violations"] == 1
        with pytest.raises(InputError, match="secondary_block_at"):
            config.faults.merged({"secondary_block_at": [0]})


async def test_points_per_minute_writes_cost_five(make_client, clock):
    config = SimConfig(secondary_points_per_minute=12, secondary_retry_after="never", secondary_status="429")
    async with make_client(config=config) as c:
        assert (await c.post("/repos/acme/web/issues", json={"title": "a"})).status_code == 201   # 5
        assert (await c.post("/repos/acme/web/issues", json={"title": "b"})).status_code == 201   # 10
        assert (await c.get("/repos/acme/web")).status_code == 200                                 # 11
        assert (await c.get("/repos/acme/web")).status_code == 200                                 # 12
        tripped = await c.get("/repos/acme/web")
        assert tripped.status_code == 429 and "retry-after" not in tripped.headers
        assert "secondary rate limit" in tripped.json()["message"]
        assert rate(tripped)[1] == 5000 - 4        # primary is untouched by secondary refusals
        clock.advance(59)
        assert (await c.get("/repos/acme/web")).status_code == 429
        clock.advance(2)                            # past the penalty: a fresh minute
        assert (await c.get("/repos/acme/web")).status_code == 200
        s = await stats(c)
        assert s["secondary_reasons"] == {"points": 1, "blocked": 1} and s["violations"] == 1


async def test_content_creation_limits_per_minute_and_hour(make_client, clock):
    config = SimConfig(content_create_per_minute=3, content_create_per_hour=5, secondary_retry_after="always",
                       secondary_status="403")
    async with make_client(config=config) as c:
        for i in range(3):
            assert (await c.post("/repos/acme/web/issues", json={"title": f"t{i}"})).status_code == 201
        blocked = await c.post("/repos/acme/web/issues", json={"title": "t3"})
        assert blocked.status_code == 403
        assert "temporarily blocked from content creation" in blocked.json()["message"]
        assert blocked.headers["retry-after"] == "60"
        assert (await c.get("/repos/acme/web")).status_code == 200   # reads are not blocked
        assert (await c.patch("/repos/acme/web/issues/1", json={"state": "closed"})).status_code == 200
        clock.advance(61)
        for i in range(2):
            assert (await c.post("/repos/acme/web/issues", json={"title": f"u{i}"})).status_code == 201
        hourly = await c.post("/repos/acme/web/issues", json={"title": "u2"})
        assert hourly.status_code == 403
        s = await stats(c)
        assert s["secondary_reasons"] == {"content_minute": 1, "content_hour": 1} and s["violations"] == 0
        assert len((await c.get("/repos/acme/web/issues", params={"state": "all"})).json()) == 5


async def test_retry_after_is_sometimes_present_and_reproducible(make_client):
    async def pattern() -> list[tuple[int, bool]]:
        config = SimConfig(secondary_points_per_minute=1, secondary_penalty_s=0, seed=11)
        out = []
        async with make_client(config=config) as c:
            await c.get("/repos/acme/web")
            for _ in range(40):
                r = await c.get("/repos/acme/web")
                assert r.status_code in (403, 429)
                out.append((r.status_code, "retry-after" in r.headers))
        return out

    first = await pattern()
    assert {has for _, has in first} == {True, False} and {code for code, _ in first} == {403, 429}
    assert await pattern() == first


# ---------------------------------------------------------------------------
# time scale

async def test_time_scale_shortens_windows_and_sends_decimal_resets(make_client, clock):
    config = SimConfig(time_scale=0.001, core_limit=2, secondary_points_per_minute=3,
                       secondary_retry_after="always")
    async with make_client(config=config) as c:
        r = await c.get("/repos/acme/web")
        reset = r.headers["x-ratelimit-reset"]
        assert "." in reset and len(reset.split(".")[1]) == 3
        assert abs(float(reset) - (clock.now + 3.6)) < 0.002
        assert isinstance((await c.get("/rate_limit")).json()["resources"]["core"]["reset"], float)
        await c.get("/repos/acme/web")
        assert (await c.get("/repos/acme/web")).status_code == 403
        clock.advance(3.6)
        assert (await c.get("/repos/acme/web")).status_code == 200
        await c.get("/rate_limit")
        await c.get("/rate_limit")
        tripped = await c.get("/rate_limit")       # 4th point within the scaled minute
        assert tripped.status_code in (403, 429)
        assert float(tripped.headers["retry-after"]) == 0.06


def test_a_graphql_query_costs_one_secondary_point_like_a_rest_get():
    """GitHub: a GraphQL query without mutations is 1 point of the 2,000 a minute, a REST write 5."""
    config = SimConfig(secondary_graphql_points_per_minute=3, secondary_points_per_minute=10)
    limiter = RateLimiter(config)
    who = identity_for("t", "127.0.0.1")
    assert [limiter.admit(who, "POST", "graphql", 0.0) for _ in range(3)] == [None] * 3
    assert limiter.admit(who, "POST", "graphql", 0.0).reason == "points"
    assert limiter.admit(who, "POST", "core", 100.0) is None and limiter.admit(who, "POST", "core", 100.0) is None
    assert limiter.admit(who, "POST", "core", 100.0).reason == "points"          # 5 + 5 of 10
