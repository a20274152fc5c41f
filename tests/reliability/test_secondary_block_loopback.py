"""Secondary blocks over real loopback (uvicorn, the aiohttp transport), the way the fault soak
meets them: the simulator imposes a block at fixed request numbers while six callers mix REST
reads and GraphQL queries. Every request completes, and the server sees no request its client
had provably been told not to send (on a connection that had just carried the block's refusal);
what reached a block otherwise is counted apart and shown."""

from __future__ import annotations

import asyncio

import httpx

from engine.github import GitHubClient
from engine.sim.config import FaultConfig, SimConfig
from engine.sim.server import running_simulator

SCALE = 0.005      # a secondary penalty of 0.3 s


async def test_blocks_at_fixed_requests_pause_every_lane_and_nothing_is_sent_into_them():
    config = SimConfig(repos=3, seed=5, time_scale=SCALE, faults=FaultConfig(secondary_block_at=[15, 50, 90]))
    async with running_simulator(config) as sim:
        async with GitHubClient(sim.base_url, "loopback-token", time_scale=SCALE, limit_retries=10) as client:
            assert client.transport_name == "aiohttp"
            name = (await client.list_org_repos("acme"))[0]["name"]
            work = list(range(120))
            done: list[int] = []

            async def caller() -> None:
                while work:
                    i = work.pop()
                    if i % 3 == 0:
                        await client.get_file_texts_graphql([("acme", name, "HEAD:README.md")])
                    else:
                        await client.get_repo("acme", name)
                    done.append(i)

            await asyncio.gather(*(caller() for _ in range(6)))
            counters = dict(client.counters)
        async with httpx.AsyncClient(base_url=sim.base_url) as side:
            seen = (await side.get("/_sim/stats")).json()
    assert sorted(done) == list(range(120))
    assert seen["secondary_reasons"]["forced"] >= 1
    assert counters["secondary_limited"] == seen["limit_responses"]["secondary"]
    assert seen["violations"] == 0, seen
    blocked = seen["secondary_reasons"].get("blocked", 0)
    assert blocked == seen["in_flight_at_block"] + seen["after_refusal_elsewhere"]
