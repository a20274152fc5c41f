"""issue-sync benchmark: content creation per minute ÷ GitHub's allowance, batchdeck vs seed 004's loop.

Both sync the shipped example (sample_configs/planning: 1 PRD, 3 epics, 510
tasks) into a fresh simulator with GitHub's content-creation limits (80 a
minute, 500 an hour), time scaled by ``BENCH_SYNC_SCALE`` (default 0.005: an
hour lasts 18 s), in this one run.

* ``batchdeck``: the issue-sync job (issues, then sub-issue links, labels and
  milestones: every one a content-creating request). ``ratio`` = the least time
  GitHub's limits allow for that many creates ÷ the time the run took, from its
  start to its end. Target >= 0.9 with zero violations.
* ``naive``: seed 004's BatchProcessor — 10 concurrent POSTs of the issues, only
  429 retried (1, 2, 4 s, scaled), nothing paced. ``ratio`` counts only the issues
  that were created; ``violations`` are creates it sent while blocked, and
  ``blocked`` whether the token was blocked at all.

Prints one JSON object on its last line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from engine.api import Engine  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.github import GitHubClient  # noqa: E402
from engine.jobs.issue_sync.job import MARKER  # noqa: E402
from engine.jobs.issue_sync.kind import KIND  # noqa: E402
from engine.jobs.issue_sync.pacing import minimum_minutes  # noqa: E402
from engine.jobs.issue_sync.tree import load_tree  # noqa: E402
from engine.sim import SimConfig, create_app  # noqa: E402
from engine.sim.data import SimOrg, SimRepo  # noqa: E402

SCALE = float(os.environ.get("BENCH_SYNC_SCALE", "0.005"))
EXAMPLE = Path(__file__).resolve().parents[1] / "sample_configs" / "planning"
CONTENT_ENDPOINTS = ("POST /repos/{o}/{r}/issues", "POST /repos/{o}/{r}/issues/{n}/sub_issues",
                     "POST /repos/{o}/{r}/labels", "POST /repos/{o}/{r}/milestones")


def fresh_app():
    org = SimOrg(login="acme", id=1, repos=[SimRepo(id=2, name="plans", owner="acme", full_name="acme/plans")])
    return create_app(SimConfig(time_scale=SCALE), org)


async def stats(app) -> dict:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://sim") as c:
        return (await c.get("/_sim/stats")).json()


def summary(s: dict, creates: int, seconds: float, issues: int) -> dict:
    minutes = seconds / SCALE / 60
    allowance = minimum_minutes(creates)
    return {"content_creates": creates, "issues": issues, "sim_minutes": round(minutes, 2),
            "allowance_minutes": round(allowance, 2), "ratio": round(allowance / minutes, 3) if minutes else None,
            "creates_per_min": round(creates / minutes, 2) if minutes else None,
            "violations": s["violations"], "content_violations": s["violations_by_kind"]["content_creation"],
            "secondary_refusals": s["limit_responses"]["secondary"], "blocked": s["limit_responses"]["secondary"] > 0}


async def batchdeck(tree) -> dict:
    app = fresh_app()
    config = load_config(None, env={}, overrides={"github": {"time_scale": SCALE}, "max_concurrent_requests": 8})
    with tempfile.TemporaryDirectory() as tmp:
        async with await Engine.open(Path(tmp) / "bench.db", config) as engine:
            spec = {"repo": "acme/plans", "root": str(EXAMPLE), "links": "sub-issues", "api_url": "http://sim",
                    "nodes": [n.to_dict() for n in tree.nodes.values()]}
            run_id = await engine.create_run(KIND.name, spec)
            client = GitHubClient("http://sim", "bench", config=config, time_scale=SCALE,
                                  transport=httpx.ASGITransport(app))
            t0 = time.perf_counter()
            try:
                await (await engine.start(run_id, github=client)).wait()
            finally:
                await client.aclose()
            seconds = time.perf_counter() - t0
    s = await stats(app)
    creates = sum(s["requests"].get(e, 0) for e in CONTENT_ENDPOINTS) - s["limit_responses"]["secondary"]
    return summary(s, creates, seconds, s["requests"].get(CONTENT_ENDPOINTS[0], 0))


async def naive(tree) -> dict:
    """Seed 004: maxConcurrent 10, retry only 429 (1 s, 2 s, 4 s), give up after 3."""
    app = fresh_app()
    created = 0
    gate = asyncio.Semaphore(10)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://sim",
                                 headers={"Authorization": "token naive"}) as c:
        async def upload(node) -> None:
            nonlocal created
            async with gate:
                for attempt in range(4):
                    r = await c.post("/repos/acme/plans/issues",
                                     json={"title": node.title, "body": node.body + "\n\n" + MARKER.format(node.sid),
                                           "labels": node.labels})
                    if r.status_code == 201:
                        created += 1
                        return
                    if r.status_code != 429 or attempt == 3:
                        return
                    await asyncio.sleep(2 ** attempt * SCALE)

        t0 = time.perf_counter()
        await asyncio.gather(*(upload(n) for n in tree.nodes.values()))
        seconds = time.perf_counter() - t0
    s = await stats(app)
    return {**summary(s, created, seconds, created), "not_created": len(tree.nodes) - created}


async def main() -> None:
    tree = load_tree(EXAMPLE)
    ours = await batchdeck(tree)
    print("batchdeck", json.dumps(ours), file=sys.stderr)
    theirs = await naive(tree)
    print("naive", json.dumps(theirs), file=sys.stderr)
    print(json.dumps({"bench": "sync", "items": len(tree.nodes), "time_scale": SCALE, "batchdeck": ours,
                      "naive": theirs, "target": "batchdeck.ratio >= 0.9 with 0 violations"}))


if __name__ == "__main__":
    asyncio.run(main())
