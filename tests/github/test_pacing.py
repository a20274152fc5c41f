"""Finish-first pacing, jobs larger than a window, and secondary limits under faults, against the
simulator in virtual time (the loop's clock jumps over waits, so an hour of scaled GitHub time
costs milliseconds and nothing depends on how fast the machine is). Judged by what the *server*
saw (``GET /_sim/stats``) and by the rate headers of every answer."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from engine.errors import BatchProcessingError
from engine.github import GitHubClient
from engine.sim.app import create_app
from engine.sim.config import BurstConfig, FaultConfig, SimConfig
from tests.github.conftest import loop_epoch, run_in_virtual_time

TOKEN = "sim-token-for-pacing"
BASE = "http://sim.test"
SCALE = 0.01                      # an hour is 36 s, a minute 0.6 s
HOUR = 3600 * SCALE


class HeaderTap(httpx.AsyncBaseTransport):
    """Keeps the status and rate headers of every answer the client got."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[tuple[int, httpx.Headers]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.seen.append((response.status_code, response.headers))
        return response

    def windows(self) -> dict[str, int]:
        """Requests counted per server window (keyed by its reset), from the answers' headers."""
        used: dict[str, int] = {}
        for _, headers in self.seen:
            if "x-ratelimit-used" in headers and int(headers["x-ratelimit-used"]) > 0:
                reset = headers["x-ratelimit-reset"]
                used[reset] = max(used.get(reset, 0), int(headers["x-ratelimit-used"]))
        return used


def simulator(config: SimConfig, **client_kw) -> tuple[GitHubClient, httpx.AsyncClient, HeaderTap]:
    app = create_app(config, clock=loop_epoch)
    tap = HeaderTap(httpx.ASGITransport(app))
    client = GitHubClient(BASE, TOKEN, transport=tap, time_scale=config.time_scale, clock=loop_epoch,
                          **client_kw)
    return client, httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE), tap


async def get_repos(client: GitHubClient, name: str, total: int, callers: int,
                    gate: asyncio.Event | None = None, pause_after: int | None = None) -> int:
    """``total`` GETs from ``callers`` concurrent callers; callers stop at ``pause_after`` until ``gate``."""
    sent = 0
    done = 0

    async def caller() -> None:
        nonlocal sent, done
        while sent < total:
            if gate is not None and pause_after is not None and sent >= pause_after:
                await gate.wait()
            sent += 1
            await client.get_repo("acme", name)
            done += 1

    await asyncio.gather(*(caller() for _ in range(callers)))
    return done


def scan(config: SimConfig, total: int, **client_kw) -> dict:
    async def main() -> dict:
        client, side, tap = simulator(config, **client_kw)
        async with client, side:
            name = (await client.list_org_repos("acme"))[0]["name"]
            started = loop_epoch()
            done = await get_repos(client, name, total - 1, callers=10)
            elapsed = loop_epoch() - started
            seen = (await side.get("/_sim/stats")).json()
        return {"done": done + 1, "elapsed": elapsed, "stats": seen, "windows": tap.windows(),
                "reset_waits": client._limiter.bucket("core").reset_waits}

    return run_in_virtual_time(main)  # type: ignore[return-value]


def test_a_scan_needing_80_percent_of_the_budget_never_waits_for_the_reset():
    """Budget 0.8 × 500 = 400; the scan needs 320. Finish-first sends it at the speed the
    simulator answers (20 ms, 10 callers: ~0.7 s of a 36 s window) and never waits for the reset."""
    config = SimConfig(repos=3, seed=5, time_scale=SCALE, core_limit=500, faults=FaultConfig(latency_ms=20))
    result = scan(config, 320, rate_limit_buffer=0.8)
    assert result["done"] == 320
    assert result["reset_waits"] == 0
    assert list(result["windows"].values()) == [320]             # all in the first window
    assert result["elapsed"] < 0.1 * HOUR
    assert result["stats"]["violations"] == 0 and result["stats"]["limit_responses"]["primary"] == 0


def test_spread_pacing_is_still_there_for_shared_tokens():
    config = SimConfig(repos=3, seed=5, time_scale=SCALE, core_limit=500, faults=FaultConfig(latency_ms=20))
    result = scan(config, 320, rate_limit_buffer=0.8, pacing="spread")
    assert result["done"] == 320 and result["stats"]["violations"] == 0
    assert result["elapsed"] > 0.3 * HOUR                         # half at once, the rest spread


def test_a_scan_larger_than_the_budget_waits_once_and_resumes_after_the_reset():
    config = SimConfig(repos=3, seed=5, time_scale=SCALE, core_limit=500, faults=FaultConfig(latency_ms=20))
    result = scan(config, 600, rate_limit_buffer=0.8)
    assert result["done"] == 600
    assert result["reset_waits"] == 1
    assert sorted(result["windows"].values(), reverse=True) == [400, 200]
    assert result["stats"]["violations"] == 0 and result["stats"]["limit_responses"] == {"primary": 0,
                                                                                         "secondary": 0}
    assert HOUR <= result["elapsed"] < 1.2 * HOUR                # one window's wait, no more


def test_many_windows_each_spend_the_buffer_and_never_overdraw():
    config = SimConfig(repos=3, seed=11, time_scale=SCALE, core_limit=200)
    result = scan(config, 1000, rate_limit_buffer=0.8)
    windows = [result["windows"][k] for k in sorted(result["windows"], key=float)]
    assert windows == [160] * 6 + [40]
    assert result["reset_waits"] == 6 and result["stats"]["violations"] == 0


def test_pausing_across_a_reset_loses_nothing():
    """Callers stop after 300 of 600 requests; the test lets more than a window pass, then opens
    the gate. Every request is answered once, the new window's budget is whole, nothing is refused."""
    config = SimConfig(repos=3, seed=5, time_scale=SCALE, core_limit=1000, faults=FaultConfig(latency_ms=20))

    async def main() -> None:
        client, side, tap = simulator(config, rate_limit_buffer=0.8)
        async with client, side:
            name = (await client.list_org_repos("acme"))[0]["name"]
            gate = asyncio.Event()
            run = asyncio.ensure_future(get_repos(client, name, 600, callers=10, gate=gate, pause_after=300))
            while len(tap.seen) < 301:
                await asyncio.sleep(0.01)
            before = client.budget_outlook(300)
            assert before.budget_left == 800 - 301 and before.resets == 0
            await asyncio.sleep(1.5 * HOUR)                          # the pause spans the reset
            after = client.budget_outlook(300)
            assert after.budget_left == 800 and after.next_reset_at is None
            gate.set()
            assert await run == 600
            seen = (await side.get("/_sim/stats")).json()
        assert seen["requests_total"] == 601
        assert seen["violations"] == 0 and seen["limit_responses"] == {"primary": 0, "secondary": 0}
        assert sorted(tap.windows().values()) == [300, 301]

    run_in_virtual_time(main)


FAULTS = FaultConfig(latency_ms=20, error_rate=0.10, timeout_rate=0.02, reset_rate=0.01, hang_s=2.0,
                     timeout_status=None, bursts=BurstConfig(every_s=3.0, duration_s=0.5, error_rate=0.5))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_under_faults_nothing_is_sent_into_a_secondary_block_and_concurrency_holds(seed):
    """10 % 5xx, 2 % timeouts (the server hangs 2 s, the client gives up after 0.5 s), 1 % resets,
    bursts, and a points-per-minute limit low enough to trip: three callers mix REST reads and
    GraphQL queries, retrying whatever fails. A secondary block pauses every lane (no request
    reaches the server during one) and a request the client abandoned keeps its concurrency slot
    until the server is done with it (the server never sees more than three at once)."""
    config = SimConfig(repos=3, seed=seed, time_scale=SCALE, secondary_max_concurrent=3,
                       secondary_points_per_minute=30, faults=FAULTS)

    async def main() -> None:
        # the server may work on a request for its latency plus a 2 s hang: 2.1 s at most
        client, side, _ = simulator(config, max_concurrent_requests=3, timeout=0.5, server_timeout_s=2.1,
                                    limit_retries=0)
        async with client, side:
            name = "x"
            while name == "x":
                try:
                    name = (await client.list_org_repos("acme"))[0]["name"]
                except BatchProcessingError:
                    pass
            work = list(range(240))
            completed = 0

            async def caller() -> None:
                nonlocal completed
                while work:
                    i = work.pop()
                    while True:
                        try:
                            if i % 3 == 0:
                                await client.get_file_texts_graphql([("acme", name, "HEAD:README.md")])
                            else:
                                await client.get_repo("acme", name)
                            break
                        except BatchProcessingError:
                            continue
                    completed += 1

            await asyncio.gather(*(caller() for _ in range(3)))
            await asyncio.sleep(3.0)                                   # let abandoned requests end
            seen = (await side.get("/_sim/stats")).json()
        assert completed == 240
        assert seen["faults_injected"]["timeout"] > 0 and seen["limit_responses"]["secondary"] > 0
        assert seen["violations"] == 0, seen["secondary_reasons"]
        assert seen["peak_concurrency"] <= 3
        assert "concurrency" not in seen["secondary_reasons"]

    run_in_virtual_time(main)
