"""ioc-scan benchmark: a 500-repository simulated org at 20 ms latency, over loopback.

The simulator runs in its own process (a real HTTP server, like GitHub is), the scan in
this one. Two scans on fresh databases: GraphQL batching on (the default) and REST only;
then the GraphQL scan again on its database (the re-scan: ETags and the blob cache).
Printed: wall time, API requests, requests per repo, the ratio of GraphQL-batched to
REST-only requests, and the re-scan's rate-limit points as a share of the first scan's.
Time in both processes is scaled by 0.1 (``--time-scale``) so that GitHub's 60 s
secondary-limit pauses, which the REST-only scan meets (900 points a minute), cost 6 s.
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
LATENCY_MS = 20
TIME_SCALE = 0.1


async def scan(db: Path, url: str, *, graphql: bool) -> dict:
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
        assert state is RunState.COMPLETED, state
        stats = (await sim.get("/_sim/stats")).json()
        truth = (await sim.get("/_sim/truth")).json()
        got = {(m.repo, m.file_path, m.package_name, m.version, m.kind) for m in await findings(engine.store, run_id)}
        expected = {(t["repo"], t["path"], t["package"], t["version"], t["kind"]) for t in truth["findings"]}
        return {"wall_s": round(wall, 2), "requests": stats["requests_total"], "graphql": stats["graphql_queries"],
                "not_modified": stats["not_modified"], "points": sum(stats["points_used"].values()),
                "violations": stats["violations"], "secondary": stats["limit_responses"]["secondary"],
                "truth_exact": got == expected}


async def main() -> None:
    sim = subprocess.Popen([sys.executable, "-m", "engine.sim.server", "--repos", str(REPOS), "--seed", "11",
                            "--latency-ms", str(LATENCY_MS), "--time-scale", str(TIME_SCALE)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = sim.stdout.readline().strip()
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
    print(json.dumps({
        "repos": REPOS, "latency_ms": LATENCY_MS,
        "wall_s": batched["wall_s"], "api_requests": batched["requests"],
        "requests_per_repo": round(batched["requests"] / REPOS, 3),
        "graphql_vs_rest_requests": round(batched["requests"] / rest["requests"], 3),
        "rest_only_wall_s": rest["wall_s"], "rest_only_requests": rest["requests"],
        "rescan_points_share": round(again["points"] / max(1, batched["points"]), 4),
        "violations": batched["violations"] + rest["violations"] + again["violations"],
        "truth_exact": batched["truth_exact"] and rest["truth_exact"] and again["truth_exact"],
    }))


if __name__ == "__main__":
    asyncio.run(main())
