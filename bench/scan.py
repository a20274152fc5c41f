"""ioc-scan benchmark: a 500-repository simulated org at 20 ms latency, over loopback.

The simulator runs in its own process (a real HTTP server, like GitHub is), the scan in
this one. Two scans on fresh databases: GraphQL batching on (the default) and REST only;
then the GraphQL scan again on its database (the re-scan: ETags and the blob cache).
Printed: wall time, API requests, requests per repo, the ratio of GraphQL-batched to
REST-only requests, and the re-scan's rate-limit points as a share of the first scan's.
Time in both processes is scaled by 0.1 (``--time-scale``) so that GitHub's 60 s
secondary-limit pauses, which the REST-only scan meets (900 points a minute), cost 6 s.

The re-scan figures: its requests per repository (target <= 1/20: head commits by
GraphQL, no tree request for an unchanged repository) and its wall time over the
first scan's (target <= 0.2).

The fault case (issue 9): a 300-repository org scanned clean, then on a fresh
database with 10 % 5xx, 3 % timeouts (504 after ``FAULT_HANG_S``) and 2 % connection
resets; then ``replay`` of its failed items with the faults off. Printed: findings
recall before and after the replay (targets >= 0.99 and 1.0), requests and wall time
over the clean scan's (target <= 2 for requests), limit violations (target 0).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.api import Engine  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.jobs.ioc_scan.scan import DEFAULT_IOCS, ScanTargets, build_spec, findings, make_client  # noqa: E402
from engine.models import RunState  # noqa: E402

REPOS = int(os.environ.get("BENCH_REPOS", "500"))
FAULT_REPOS = int(os.environ.get("BENCH_FAULT_REPOS", "300"))
FAULTS = {"error_rate": 0.10, "timeout_rate": 0.03, "reset_rate": 0.02, "hang_s": 2.0}
FAULT_HANG_S = FAULTS["hang_s"]
LATENCY_MS = 20
TIME_SCALE = 0.1


async def scan(db: Path, url: str, *, graphql: bool, check: bool = True) -> dict:
    config = load_config(None, env={}, overrides={"enable_cross_repo_batching": graphql, "time_scale": TIME_SCALE,
                                                  "max_concurrent_requests": 20, "max_concurrent_repos": 10})
    async with await Engine.open(db, config) as engine, httpx.AsyncClient(base_url=url) as sim:
        await sim.post("/_sim/reset")
        spec = build_spec(ScanTargets(orgs=["acme"]), [DEFAULT_IOCS], include_archived=True, include_forks=True,
                          api_url=url)
        client = make_client(engine, url, "bench-token")
        run_id = await engine.create_run("ioc-scan", spec)
        t0 = time.perf_counter()
        state = await (await engine.start(run_id, github=client)).wait()
        wall = time.perf_counter() - t0
        await client.aclose()
        assert state is RunState.COMPLETED or not check, state
        stats = (await sim.get("/_sim/stats")).json()
        truth = (await sim.get("/_sim/truth")).json()
        got = {(m.repo, m.file_path, m.package_name, m.version, m.kind) for m in await findings(engine.store, run_id)}
        expected = {(t["repo"], t["path"], t["package"], t["version"], t["kind"]) for t in truth["findings"]}
        return {"wall_s": round(wall, 2), "requests": stats["requests_total"], "graphql": stats["graphql_queries"],
                "not_modified": stats["not_modified"], "points": sum(stats["points_used"].values()),
                "violations": stats["violations"], "secondary": stats["limit_responses"]["secondary"],
                "truth_exact": got == expected, "recall": round(len(got & expected) / max(1, len(expected)), 4),
                "failed": (await engine.store.counts(run_id)).failed, "run_id": run_id}


async def replay_recall(db: Path, url: str, run_id: int) -> float:
    """Replay the failed items of ``run_id`` (faults now off); the recall of run + replay."""
    config = load_config(None, env={}, overrides={"time_scale": TIME_SCALE, "max_concurrent_requests": 20})
    async with await Engine.open(db, config) as engine, httpx.AsyncClient(base_url=url) as sim:
        got = {(m.repo, m.file_path, m.package_name, m.version, m.kind) for m in await findings(engine.store, run_id)}
        if (await engine.store.counts(run_id)).failed:
            child = await engine.replay(run_id)
            client = make_client(engine, url, "bench-token")
            state = await (await engine.start(child, github=client)).wait()
            await client.aclose()
            assert state is RunState.COMPLETED, state
            got |= {(m.repo, m.file_path, m.package_name, m.version, m.kind)
                    for m in await findings(engine.store, child)}
        truth = (await sim.get("/_sim/truth")).json()
        expected = {(t["repo"], t["path"], t["package"], t["version"], t["kind"]) for t in truth["findings"]}
        return round(len(got & expected) / max(1, len(expected)), 4)


def start_sim(repos: int) -> tuple[subprocess.Popen, str]:
    sim = subprocess.Popen([sys.executable, "-m", "engine.sim.server", "--repos", str(repos), "--seed", "11",
                            "--latency-ms", str(LATENCY_MS), "--time-scale", str(TIME_SCALE)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return sim, sim.stdout.readline().strip()


async def fault_case(tmp: Path) -> dict:
    sim, url = start_sim(FAULT_REPOS)
    try:
        clean = await scan(tmp / "clean.db", url, graphql=True)
        print(f"fault case, clean:  {clean}")
        async with httpx.AsyncClient(base_url=url) as client:
            await client.post("/_sim/faults", json=FAULTS)
        faulty = await scan(tmp / "faults.db", url, graphql=True, check=False)
        print(f"fault case, faults: {faulty}")
        async with httpx.AsyncClient(base_url=url) as client:
            await client.post("/_sim/faults", json={"error_rate": 0, "timeout_rate": 0, "reset_rate": 0})
        after = await replay_recall(tmp / "faults.db", url, faulty["run_id"])
    finally:
        sim.terminate()
        sim.wait()
    return {"repos": FAULT_REPOS, **{k: v for k, v in FAULTS.items()},
            "recall_before_replay": faulty["recall"], "recall_after_replay": after,
            "failed_items": faulty["failed"], "requests_vs_clean": round(faulty["requests"] / clean["requests"], 3),
            "graphql_queries": faulty["graphql"], "graphql_queries_clean": clean["graphql"],
            "wall_vs_clean": round(faulty["wall_s"] / clean["wall_s"], 2), "violations": faulty["violations"]}


async def main() -> None:
    sim, url = start_sim(REPOS)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            batched = await scan(Path(tmp) / "graphql.db", url, graphql=True)
            print(f"GraphQL-batched: {batched}")
            rest = await scan(Path(tmp) / "rest.db", url, graphql=False)
            print(f"REST only:       {rest}")
            again = await scan(Path(tmp) / "graphql.db", url, graphql=True)
            print(f"re-scan:         {again}")
    finally:
        sim.terminate()
        sim.wait()
    with tempfile.TemporaryDirectory() as tmp:
        faults = await fault_case(Path(tmp))
    print(json.dumps({
        "repos": REPOS, "latency_ms": LATENCY_MS,
        "wall_s": batched["wall_s"], "api_requests": batched["requests"],
        "requests_per_repo": round(batched["requests"] / REPOS, 3),
        "graphql_vs_rest_requests": round(batched["requests"] / rest["requests"], 3),
        "rest_only_wall_s": rest["wall_s"], "rest_only_requests": rest["requests"],
        "rescan_points_share": round(again["points"] / max(1, batched["points"]), 4),
        "rescan_requests_per_repo": round(again["requests"] / REPOS, 4),
        "rescan_wall_vs_first": round(again["wall_s"] / batched["wall_s"], 3),
        "rescan_truth_exact": again["truth_exact"],
        "faults": faults,
        "violations": batched["violations"] + rest["violations"] + again["violations"],
        "truth_exact": batched["truth_exact"] and rest["truth_exact"] and again["truth_exact"],
    }))


if __name__ == "__main__":
    asyncio.run(main())
