"""GraphQL blob batches against the simulator: retried as a batch, split only when the batch is the problem."""

from __future__ import annotations

import asyncio

import httpx

from engine.config import load_config
from engine.github import GitHubClient
from engine.jobs.ioc_scan.fetch import BatchFetcher
from engine.jobs.ioc_scan.job import IocScanJob
from engine.jobs.ioc_scan.parsers import parser_for
from engine.models import Item
from engine.processor import RunContext
from engine.retry import RetryPlanner
from engine.sim import SimConfig, create_app
from engine.sim.faults import FailRequests
from engine.store import Store


def blob_requests(app, n):
    """``n`` distinct text files (owner, repo, sha) with their contents."""
    out, seen = [], set()
    for repo in app.state.sim.org.repos:
        for path, f in sorted(repo.files.items()):
            if path.endswith((".json", ".lock", ".yaml")) and f.sha not in seen and 1_000 < f.size < 50_000 \
                    and b"\0" not in f.content and f.content.isascii():
                seen.add(f.sha)
                out.append(((repo.owner, repo.name, f.sha), f.content.decode()))
                if len(out) == n:
                    return out
    raise AssertionError("not enough files")


async def fetch(app, transport_app, requests):
    config = load_config(None, env={}, overrides={"retry_delay_base": 0.1})
    waits: list[float] = []

    async def no_wait(delay: float) -> None:
        waits.append(delay)

    async with GitHubClient("http://sim", "sim-token", transport=httpx.ASGITransport(transport_app)) as gh:
        fetcher = BatchFetcher(gh, RetryPlanner(config).decide, sleep=no_wait)
        return await fetcher.texts(requests), waits


async def sim_stats(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://sim") as client:
        return (await client.get("/_sim/stats")).json()


async def test_a_batch_that_fails_with_a_5xx_is_retried_whole_not_file_by_file():
    app = create_app(SimConfig(repos=40, seed=2))
    files = blob_requests(app, 12)
    flaky = FailRequests(app, "/graphql", status=502, times=2)
    texts, waits = await fetch(app, flaky, [r for r, _ in files])
    assert [t.text for t in texts] == [content for _, content in files]
    assert flaky.failed == 2 and len(waits) == 2 and all(w > 0 for w in waits)   # the policy's backoff
    assert (await sim_stats(app))["graphql_queries"] == 1                        # one query answered all 12


async def test_a_batch_too_big_to_answer_is_split_in_halves_until_it_fits():
    app = create_app(SimConfig(repos=40, seed=2))
    files = blob_requests(app, 8)
    biggest = max(len(content) for _, content in files)
    # a response of two files fits, of eight does not: GitHub's 502 "...the result of a timeout"
    app.state.sim.config.graphql_response_limit_bytes = 2 * biggest + 4_000
    texts, _ = await fetch(app, app, [r for r, _ in files])
    assert [t.text for t in texts] == [content for _, content in files]
    stats = await sim_stats(app)
    assert stats["statuses"]["502"] >= 2 and stats["statuses"]["200"] >= 2     # tried whole twice, then halves


class HeldFailure(FailRequests):
    """GraphQL answering 500 once the test opens ``gate`` (so a second batch is waiting by then)."""

    def __init__(self, app):
        super().__init__(app, "/graphql", status=500)
        self.gate, self.reached = asyncio.Event(), asyncio.Event()

    async def __call__(self, scope, receive, send):
        self.reached.set()
        await self.gate.wait()
        await super().__call__(scope, receive, send)


async def test_a_batch_waiting_on_another_batchs_failed_fetch_carries_that_failure(tmp_path):
    """Two batches want the same blob; the one fetching it fails for good (500 twice): the items of
    both end with GitHub's error, said once, not "blob fetch by another batch failed"."""
    app = create_app(SimConfig(repos=40, seed=2))
    (owner, name, sha), _ = blob_requests(app, 1)[0]
    path = next(p for r in app.state.sim.org.repos for p, f in r.files.items() if f.sha == sha)
    config = load_config(None, env={}, overrides={"retry_delay_base": 0.1, "retry_attempts": 1})
    held = HeldFailure(app)
    store = await Store.open(tmp_path / "job.db")
    try:
        async with GitHubClient("http://sim", "sim-token", transport=httpx.ASGITransport(held)) as gh:
            ctx = RunContext(run_id=1, config=config, store=store, breakers=None, github=gh,
                             _write=lambda _sql, _rows: None)
            job = IocScanJob()
            payload = {"owner": owner, "name": name, "full_name": f"{owner}/{name}", "path": path, "sha": sha,
                       "size": 1, "parser": parser_for(path).name, "ref": "main"}

            def item(i):
                return Item(id=i, run_id=1, seq=i, key=f"file:{owner}/{name}:{path}#{i}", payload=payload,
                            priority=0, lane="graphql")

            fetching = asyncio.create_task(job.process_batch([item(1)], ctx))
            await held.reached.wait()                   # the first batch's query is on the wire
            waiting = asyncio.create_task(job.process_batch([item(2)], ctx))
            await asyncio.sleep(0)                      # let it find the fetch in flight and wait on it
            held.gate.set()
            failed, results = await asyncio.gather(fetching, waiting, return_exceptions=True)
    finally:
        await store.close()
    # the fetching batch raises (the runner gives it to each of its items), the waiting one has it per item
    assert [str(failed), *map(str, results)] == ["GitHub server error 500 on POST /graphql: Server Error"] * 2
    assert held.failed == 2                             # one query, retried once; the waiting batch sent none
