"""GitHubClient against small recording apps mounted in-process (httpx.ASGITransport)."""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import time

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.breaker import BreakerRegistry
from engine.config import BatchConfig
from engine.errors import AuthError, ClientError, SecondaryRateLimitError, ServerError
from engine.github import GitHubClient, MemoryHttpCache

BASE = "http://github.test"
TOKEN = "tok-0123456789-secret"
SECONDARY = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."


def client_for(recorder, token=TOKEN, **kw) -> GitHubClient:
    return GitHubClient(BASE, token, transport=httpx.ASGITransport(recorder.app()), **kw)


async def test_sends_githubs_headers_and_the_token_only_to_its_own_origin(recorder, headers_for):
    @recorder.route("/orgs/acme/repos")
    async def listing(request: Request) -> Response:
        if request.url.hostname == "elsewhere.test":
            return JSONResponse([{"id": 2}], headers=headers_for())
        link = '<http://elsewhere.test/orgs/acme/repos?page=2>; rel="next"'
        return JSONResponse([{"id": 1}], headers={**headers_for(), "link": link})

    async with client_for(recorder) as client:
        repos = await client.list_org_repos("acme")
    assert [r["id"] for r in repos] == [1, 2]
    home, away = recorder.arrivals
    assert home.headers["authorization"] == f"Bearer {TOKEN}"
    assert home.headers["accept"] == "application/vnd.github+json"
    assert home.headers["x-github-api-version"] == "2022-11-28"
    assert home.headers["user-agent"].startswith("batchdeck")
    assert "per_page=100" in home.query and "type=all" in home.query
    assert "authorization" not in away.headers                # a Link to another host never gets the token


async def test_pagination_follows_link_headers_and_yields_each_item_once(recorder, headers_for):
    items = list(range(250))

    @recorder.route("/orgs/acme/repos")
    async def listing(request: Request) -> Response:
        page = int(request.query_params.get("page", 1))
        per_page = int(request.query_params["per_page"])
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = headers_for()
        if page * per_page < len(items):
            headers["link"] = f'<{BASE}/orgs/acme/repos?per_page={per_page}&page={page + 1}>; rel="next"'
        return JSONResponse([{"id": i} for i in chunk], headers=headers)

    async with client_for(recorder) as client:
        seen = [r["id"] async for r in client.paginate("/orgs/acme/repos")]
    assert seen == items and len(recorder.arrivals) == 3


async def test_a_304_is_served_from_the_cache_and_counted_as_saved(recorder, headers_for):
    reset = time.time() + 3600

    @recorder.route("/repos/o/r")
    async def repo(request: Request) -> Response:
        if request.headers.get("if-none-match") == '"v1"':
            return Response(status_code=304, headers={**headers_for(limit=100_000, remaining=99_999, reset=reset), "etag": '"v1"'})
        return JSONResponse({"name": "r"}, headers={**headers_for(limit=100_000, remaining=99_999, reset=reset), "etag": '"v1"'})

    counts: dict[str, int] = {}
    cache = MemoryHttpCache()

    def on_count(name: str, n: int) -> None:
        counts[name] = counts.get(name, 0) + n

    async with client_for(recorder, cache=cache, on_count=on_count) as client:
        first = await client.request("GET", "/repos/o/r")
        second = await client.request("GET", "/repos/o/r")
        gauge = client.rate_limits()[0]
    assert not first.from_cache and second.from_cache
    assert second.data == {"name": "r"} and second.status == 200
    assert recorder.arrivals[1].headers["if-none-match"] == '"v1"'
    assert counts == {"api_requests": 2, "api_requests_saved": 1}
    assert gauge.remaining == 99_999


async def test_401_raises_auth_error_once_without_the_token_anywhere(recorder, caplog):
    @recorder.route("/repos/o/r")
    async def denied(request: Request) -> Response:
        return JSONResponse({"message": "Bad credentials"}, status_code=401)

    client = client_for(recorder)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(AuthError) as caught:
            await client.get_repo("o", "r")
    await client.aclose()
    assert len(recorder.arrivals) == 1
    assert str(caught.value) == f"GitHub rejected the token (401 Bad credentials) for {BASE}"
    for text in (str(caught.value), repr(caught.value), repr(client), caplog.text):
        assert TOKEN not in text


async def test_server_errors_are_raised_for_the_engine_to_retry_not_retried_here(recorder):
    @recorder.route("/repos/o/r")
    async def broken(request: Request) -> Response:
        return JSONResponse({"message": "Server Error"}, status_code=502)

    async with client_for(recorder) as client:
        with pytest.raises(ServerError) as caught:
            await client.get_repo("o", "r")
    assert caught.value.status_code == 502 and len(recorder.arrivals) == 1


async def test_a_primary_refusal_waits_for_the_reset_then_retries(recorder, headers_for):
    reset_at: list[float] = []

    @recorder.route("/repos/o/r")
    async def limited(request: Request) -> Response:
        if not reset_at:
            reset_at.append(time.time() + 0.3)
            return JSONResponse({"message": "API rate limit exceeded for user ID 1."}, status_code=403,
                                headers=headers_for(limit=60, remaining=0, reset=reset_at[0]))
        return JSONResponse({"name": "r"}, headers=headers_for(limit=60, remaining=59, reset=time.time() + 60))

    async with client_for(recorder, time_scale=0.01) as client:
        repo = await client.get_repo("o", "r")
        counters = dict(client.counters)
    assert repo == {"name": "r"}
    assert len(recorder.arrivals) == 2
    assert counters["rate_limited"] == 1 and counters["retries_after_wait"] == 1
    assert recorder.arrivals[1].at - recorder.arrivals[0].at >= 0.25   # it waited (monotonic vs epoch slack)


async def test_a_secondary_limit_pauses_every_caller_of_the_lane(recorder, headers_for):
    """Ten callers hit a lane that the server blocks for a while: the client must not send
    a single request into the block once it has been told about it."""
    block: dict[str, float] = {}
    first_refusal_sent: list[float] = []
    during_block_after_refusal: list[float] = []
    first_wave_in = asyncio.Event()        # all ten first-wave requests have arrived

    @recorder.route("/repos/o/r")
    async def secondary(request: Request) -> Response:
        now = time.monotonic()
        if len(recorder.arrivals) == 1:                # the client's first request probes the bucket
            return JSONResponse({"name": "r"}, headers=headers_for())
        if "until" not in block:
            block["until"] = now + 0.6
        if first_refusal_sent and now < block["until"]:
            during_block_after_refusal.append(now)
        if len(recorder.arrivals) == 11:
            first_wave_in.set()
        await first_wave_in.wait()                     # every first-wave request is in flight together
        if time.monotonic() < block["until"]:
            if not first_refusal_sent:
                first_refusal_sent.append(time.monotonic())
            wait = block["until"] - time.monotonic()
            return JSONResponse({"message": SECONDARY}, status_code=403,
                                headers={**headers_for(), "retry-after": f"{wait:.3f}"})
        return JSONResponse({"name": "r"}, headers=headers_for())

    async with client_for(recorder, time_scale=0.01) as client:
        await client.get_repo("o", "r")
        results = await asyncio.gather(*(client.get_repo("o", "r") for _ in range(10)))
        counters = dict(client.counters)
    assert results == [{"name": "r"}] * 10
    assert during_block_after_refusal == []
    assert len(recorder.arrivals) == 21                # ten refused together, ten retried after the pause
    assert counters["secondary_limited"] == 10 and counters["retries_after_wait"] == 10


class GatedBody(httpx.AsyncByteStream):
    def __init__(self, body: bytes, gate: asyncio.Event) -> None:
        self.body, self.gate = body, gate

    async def __aiter__(self):
        await self.gate.wait()
        yield self.body


class StatusLineFirst(httpx.AsyncBaseTransport):
    """Answers as a connection does, status line first and body after: the second request for
    /repos/o/r gets a secondary-limit 403 whose body arrives only when ``body_gate`` opens."""

    def __init__(self, headers_for) -> None:
        self.headers_for = headers_for
        self.status_line_out = asyncio.Event()
        self.body_gate = asyncio.Event()
        self.sent: list[tuple[str, bool]] = []      # (path, sent while that 403's body was on its way)

    def sent_while_held(self) -> list[str]:
        return [path for path, held in self.sent if held]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((request.url.path, self.status_line_out.is_set() and not self.body_gate.is_set()))
        if request.url.path == "/repos/o/r" and len(self.sent) == 2:
            self.status_line_out.set()
            body = GatedBody(jsonlib.dumps({"message": SECONDARY}).encode(), self.body_gate)
            return httpx.Response(403, headers={**self.headers_for(), "retry-after": "0.05"}, stream=body)
        return httpx.Response(200, headers=self.headers_for(), json={"name": "r"})


async def test_no_lane_sends_between_a_403_status_line_and_its_body(headers_for):
    """Whether a 403 is a secondary limit only its body says, and other tasks run while it is
    read: the client holds every lane of the token from the status line on, so a GraphQL or
    search request never goes out after the block response has started to arrive."""
    transport = StatusLineFirst(headers_for)
    async with GitHubClient(BASE, TOKEN, transport=transport, time_scale=0.01) as client:
        await client.get_repo("o", "r")                     # learns the bucket
        refused = asyncio.create_task(client.get_repo("o", "r"))
        await transport.status_line_out.wait()              # the 403's status line has been received
        other = asyncio.create_task(client.get_json("/repos/o/other", lane="search"))
        while not (transport.sent_while_held() or client.holding_lanes):
            await asyncio.sleep(0)                          # until either happens: it sent, or it holds
        transport.body_gate.set()
        assert await refused == {"name": "r"} and await other == {"name": "r"}
    assert transport.sent_while_held() == []
    paths = [path for path, _ in transport.sent]
    assert paths[:2] == ["/repos/o/r"] * 2 and sorted(paths[2:]) == ["/repos/o/other", "/repos/o/r"]
    assert client.counters["secondary_limited"] == 1


async def test_callers_arriving_during_a_pause_wait_for_its_end(recorder, headers_for):
    refused: list[float] = []

    @recorder.route("/repos/o/r")
    async def once(request: Request) -> Response:
        if not refused:
            refused.append(time.monotonic())
            return JSONResponse({"message": SECONDARY}, status_code=429, headers={**headers_for(),
                                                                                 "retry-after": "0.5"})
        return JSONResponse({"name": "r"}, headers=headers_for())

    async with client_for(recorder, time_scale=0.01) as client:
        first = asyncio.ensure_future(client.get_repo("o", "r"))
        while not any(v.paused_until for v in client.lanes() if v.name == "read"):
            await asyncio.sleep(0.005)
        late = await asyncio.gather(*(client.get_repo("o", "r") for _ in range(5)))
        await first
        others = await client.get_json("/repos/o/r", lane="search")   # another lane is not paused
    assert late == [{"name": "r"}] * 5 and others == {"name": "r"}
    read_arrivals = [a.at for a in recorder.arrivals[1:-1]]
    assert len(read_arrivals) == 6
    assert min(read_arrivals) >= refused[0] + 0.5


async def test_a_secondary_limit_that_persists_raises_with_retry_after(recorder, headers_for):
    @recorder.route("/repos/o/r")
    async def always(request: Request) -> Response:
        return JSONResponse({"message": SECONDARY}, status_code=403, headers={**headers_for(), "retry-after": "0.05"})

    async with client_for(recorder, time_scale=0.001, limit_retries=2) as client:
        with pytest.raises(SecondaryRateLimitError) as caught:
            await client.get_repo("o", "r")
    assert caught.value.retry_after == pytest.approx(0.05) and caught.value.lane == "read"
    assert len(recorder.arrivals) == 3


async def test_without_retry_after_the_pause_is_a_scaled_minute(recorder, headers_for):
    @recorder.route("/repos/o/r")
    async def always(request: Request) -> Response:
        return JSONResponse({"message": SECONDARY}, status_code=403, headers=headers_for())

    async with client_for(recorder, time_scale=0.002, limit_retries=1) as client:
        with pytest.raises(SecondaryRateLimitError) as caught:
            await client.get_repo("o", "r")
    first, second = recorder.arrivals
    assert caught.value.retry_after == pytest.approx(0.24)      # the repeat doubled 60 s × 0.002
    assert second.at - first.at >= 0.12 - 0.01


async def test_mutations_are_spaced_and_go_through_the_write_lane(recorder, headers_for, clock):
    arrivals: list[float] = []

    @recorder.route("/repos/o/r/issues")
    async def create(request: Request) -> Response:
        arrivals.append(clock())
        return JSONResponse({"number": len(arrivals)}, status_code=201, headers=headers_for(reset=clock() + 3600))

    async with client_for(recorder, time_scale=0.5, clock=clock, sleep=clock.sleep) as client:
        numbers = await asyncio.gather(*(client.create_issue("o", "r", f"t{i}") for i in range(4)))
        views = {v.name: v for v in client.lanes()}
    assert sorted(n["number"] for n in numbers) == [1, 2, 3, 4]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert all(gap >= 0.5 for gap in gaps), gaps
    assert views["write"].content_budget_per_min == 80


async def test_graphql_field_errors_come_back_and_whole_query_errors_raise(recorder, headers_for):
    @recorder.route("/graphql")
    async def graphql(request: Request) -> Response:
        body = await request.json()
        if "broken" in body["query"]:
            return JSONResponse({"errors": [{"message": "Parse error on \"broken\""}]})
        assert body["variables"]["e0"] == "HEAD:package-lock.json"
        return JSONResponse({
            "data": {"f0": {"object": {"text": "{}"}}, "f1": {"object": None}, "f2": None},
            "errors": [{"type": "NOT_FOUND", "path": ["f2"], "message": "Could not resolve to a Repository"}],
        }, headers=headers_for(resource="graphql"))

    async with client_for(recorder) as client:
        texts = await client.get_file_texts_graphql([
            ("o", "r", "HEAD:package-lock.json"), ("o", "r", "HEAD:missing"), ("o", "gone", "HEAD:x")])
        with pytest.raises(ClientError, match="Parse error"):
            await client.graphql("query { broken }")
        assert [g.resource for g in client.rate_limits()] == ["graphql"]
    assert texts[0] == "{}" and texts[1] is None
    assert isinstance(texts[2], ClientError) and texts[2].status_code == 404
    assert len(recorder.arrivals) == 2


async def test_an_open_breaker_holds_requests_until_it_half_opens(recorder, headers_for):
    failing = {"on": True}

    @recorder.route("/repos/o/r")
    async def flaky(request: Request) -> Response:
        if failing["on"]:
            return JSONResponse({"message": "Server Error"}, status_code=503)
        return JSONResponse({"name": "r"}, headers=headers_for())

    breakers = BreakerRegistry(BatchConfig(breaker_failure_threshold=2, breaker_recovery_timeout=0.3),
                               rng=lambda: 0.5)     # recovery without jitter: exactly 0.3 s
    async with client_for(recorder, breakers=breakers) as client:
        for _ in range(2):
            with pytest.raises(ServerError):
                await client.get_repo("o", "r")
        assert breakers.get("read").state == "open"
        opened = time.monotonic()
        failing["on"] = False
        assert await client.get_repo("o", "r") == {"name": "r"}
    assert recorder.arrivals[2].at - opened >= 0.25
    assert breakers.get("read").state == "closed"


async def test_config_values_are_used_when_no_argument_overrides_them():
    class Github:
        api_url = "https://ghe.example.com/api/v3"
        time_scale = 0.5
        request_timeout = 7.0
        transport = "httpx"

    class Batch:
        rate_limit_buffer = 0.6

    class Config:
        github = Github()
        batch = Batch()

    client = GitHubClient(None, None, config=Config(), timeout=3.0)
    try:
        assert client.api_url == "https://ghe.example.com/api/v3"
        assert client.graphql_url == "https://ghe.example.com/api/graphql"
        assert (client.rate_limit_buffer, client.time_scale, client.timeout) == (0.6, 0.5, 3.0)
        assert client.transport_name == "httpx"
        assert repr(client) == ("GitHubClient(api_url='https://ghe.example.com/api/v3', token=none, "
                                "transport='httpx')")
    finally:
        await client.aclose()
