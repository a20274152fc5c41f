"""How close an ioc-scan gets to the time GitHub's limits allow (finish-first pacing).

Each simulator runs in its own process (a real HTTP server on loopback, 20 ms latency,
GitHub's limits) and each scan runs the whole engine (runner, SQLite, the ioc-scan job) on a
fresh database in this one; what the server saw comes from ``/_sim/stats``. Both processes
share the machine's cores: their CPU seconds and the time their event loops waited for a
CPU other processes held (Linux schedstat) are printed next to each wall time.

**Which time scale.** Scaling the simulator's time (``--time-scale 0.1``: an hour is 6 min)
compresses GitHub's limits, not our CPU: a 3,000-repo scan parses about 18,000 lockfiles
(some 40 s of CPU on this machine) whatever the scale, while its limit-bound minimum is 21 s
at 0.1. At 0.1 the big org measures the machine's CPU, not the pacing; so it runs at GitHub's
own time by default (``--time-scale 1``: a 3,000-repo org takes four minutes). The cases that
measure budgets use scaled time, sized so that their limits, not the CPU, bound them.

Printed, measured in this run:

* ``org_wall_over_bound`` — the big org's wall time ÷ the limit-bound minimum: the longest of
  REST points ÷ 900 a minute, GraphQL points ÷ 2,000 a minute (each as the simulator charges
  them), the waits for resets the primary budget forces (``budget_outlook``) and requests ×
  latency ÷ concurrency. Target <= 1.2 with 0 violations. ``org_wall_over_strict_bound``:
  the same over whole minutes (the simulator's minute is a window opened by its first request,
  whose 900 points may all go at once, so N points need only ``ceil(N / 900) - 1`` minutes).
* ``pacer_wall_over_bound`` — the pacing alone, free of the machine's load: the big org's
  requests (as many REST GETs and GraphQL queries as its scan sent) through the client against
  an in-process simulator in virtual time (looptime: the loop's clock jumps over waits, so CPU
  time costs nothing), ÷ the same bound.
* ``tight_over_ample`` — a ``--small-repos`` org at time scale 0.1 scanned with a primary
  budget it needs 80 % of (the simulator's core and GraphQL limits set from the ample run's
  usage) ÷ the same scan with an ample budget. Target <= 1.3. ``pacer_tight_over_ample``: the
  same for the pacer alone in virtual time.
* ``two_orgs_over_one`` — as a GitHub App: two ``--small-repos`` orgs, one installation each
  (two simulators), scanned in one run ÷ one of them alone. Target <= 1.2 for twice the work.
  Each installation's hourly limit is set so that its org needs 1.3 budgets (time scale 0.01:
  one wait for a reset, 36 s), so the scans are bound by their installations' buckets, which two
  installations have twice of. ``two_orgs_over_one_unlimited`` is the same with GitHub's
  installation limits (12,500 an hour: never reached): nothing but the engine's CPU bounds such
  a scan, and twice the orgs is twice the CPU (``two_orgs_unlimited_engine_cpu_over_one``).

Default (sized for a few minutes on a loaded 2-core machine): 1,000 repositories and 300. The
issue's figures: ``--repos 3000 --small-repos 300``.

    .venv/bin/python bench/pacing.py [--repos 3000] [--small-repos 300] [--pacing finish|spread]
                                     [--time-scale 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.api import Engine  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.github.app_auth import InstallationAuth  # noqa: E402
from engine.github.ratelimit import budget_outlook  # noqa: E402
from engine.github.router import OwnerRouter  # noqa: E402
from engine.jobs.ioc_scan.scan import DEFAULT_IOCS, ScanTargets, build_spec, findings, make_client  # noqa: E402
from engine.models import RunState  # noqa: E402
from engine.sim.apps import generate_key_pair  # noqa: E402

BIG_TIME_SCALE = 1.0        # the big org: GitHub's own time (see the module docstring)
SMALL_TIME_SCALE = 0.1      # tight vs ample budget: an hour is 6 min
APP_TIME_SCALE = 0.01       # two orgs as an App: an hour is 36 s, so a reset wait costs 36 s
APP_BUDGETS = 1.3           # each org of the App case needs this many of its installation's budgets
LATENCY_MS = 20
CONCURRENCY = 20
BUFFER = 0.8
APP_ID = 4242
SIMULATORS: dict[str, Simulator] = {}    # by URL: the running simulators, to read their CPU time


def runqueue_wait_s(pid: int) -> float | None:
    """Seconds the process's main thread (the event loop) was ready to run but waited for a
    CPU (Linux schedstat): what other processes on a shared machine took from it."""
    try:
        return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


class Simulator:
    """``python -m engine.sim.server`` in a child process, with a config file."""

    def __init__(self, tmp: Path, name: str, time_scale: float, **config: object) -> None:
        self.path = tmp / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump({"seed": 11, "time_scale": time_scale,
                                             "faults": {"latency_ms": LATENCY_MS}, **config}))
        self.config = config

    def __enter__(self) -> str:
        self.proc = subprocess.Popen([sys.executable, "-m", "engine.sim.server", "--config", str(self.path)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = self.proc.stdout.readline().strip()
        SIMULATORS[self.url] = self
        return self.url

    def starved_s(self) -> float | None:
        return runqueue_wait_s(self.proc.pid)

    def cpu_s(self) -> float:
        """CPU seconds the simulator's process has used so far (user + system)."""
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def __exit__(self, *exc: object) -> None:
        SIMULATORS.pop(self.url, None)
        self.proc.terminate()
        self.proc.wait()


async def scan(db: Path, urls: dict[str, str], pacing: str, time_scale: float, app_key: str | None = None) -> dict:
    """Scan the orgs (org → simulator URL); as the App's installations when ``app_key`` is given."""
    config = load_config(None, env={}, overrides={"time_scale": time_scale, "pacing": pacing,
                                                  "max_concurrent_requests": CONCURRENCY,
                                                  "max_concurrent_repos": 10, "rate_limit_buffer": BUFFER})
    async with await Engine.open(db, config) as engine:
        first = next(iter(urls.values()))
        spec = build_spec(ScanTargets(orgs=list(urls)), [DEFAULT_IOCS], include_archived=True,
                          include_forks=True, api_url=first)
        if app_key is None:
            client = make_client(engine, first, "bench-token")
        else:
            clients = {}
            for org, url in urls.items():
                clients[org] = make_client(engine, url, None)
                clients[org].use_auth(InstallationAuth(APP_ID, app_key, org=org))
            client = OwnerRouter(clients) if len(clients) > 1 else clients[next(iter(urls))]
        run_id = await engine.create_run("ioc-scan", spec)
        sims = [SIMULATORS[url] for url in urls.values() if url in SIMULATORS]
        sim_cpu = sum(sim.cpu_s() for sim in sims)
        starved = [runqueue_wait_s(os.getpid()), *(sim.starved_s() for sim in sims)]
        started, engine_cpu = time.perf_counter(), time.process_time()
        state = await (await engine.start(run_id, github=client)).wait()
        wall = time.perf_counter() - started
        engine_cpu = time.process_time() - engine_cpu
        sim_cpu = sum(sim.cpu_s() for sim in sims) - sim_cpu
        after = [runqueue_wait_s(os.getpid()), *(sim.starved_s() for sim in sims)]
        engine_starved = after[0] - starved[0] if None not in (after[0], starved[0]) else None
        sim_starved = sum(a - b for a, b in zip(after[1:], starved[1:], strict=True)) \
            if None not in after + starved else None
        await client.aclose()
        assert state is RunState.COMPLETED, state
        found = {(m.repo, m.file_path, m.package_name, m.version, m.kind, m.line_number)
                 for m in await findings(engine.store, run_id)}
        failed_items = len(await engine.store.failed_items(run_id))
    stats = {"requests_total": 0, "graphql_queries": 0, "points_used": {}, "violations": 0,
             "limit_responses": {"primary": 0, "secondary": 0}}
    for url in urls.values():
        async with httpx.AsyncClient(base_url=url) as side:
            one = (await side.get("/_sim/stats")).json()
        for key in ("requests_total", "graphql_queries", "violations"):
            stats[key] += one[key]
        for kind in ("primary", "secondary"):
            stats["limit_responses"][kind] += one["limit_responses"][kind]
        for resource, n in one["points_used"].items():
            stats["points_used"][resource] = stats["points_used"].get(resource, 0) + n
    truth = set()
    for url in urls.values():
        async with httpx.AsyncClient(base_url=url) as side:
            truth |= {(t["repo"], t["path"], t["package"], t["version"], t["kind"], t["line"])
                      for t in (await side.get("/_sim/truth")).json()["findings"]}
    graphql = stats["graphql_queries"]
    return {"wall_s": round(wall, 2), "engine_cpu_s": round(engine_cpu, 2), "sim_cpu_s": round(sim_cpu, 2),
            "engine_loop_starved_s": None if engine_starved is None else round(engine_starved, 2),
            "sim_loop_starved_s": None if sim_starved is None else round(sim_starved, 2),
            "requests": stats["requests_total"], "graphql_queries": graphql,
            "rest_requests": stats["requests_total"] - graphql, "points_used": stats["points_used"],
            "violations": stats["violations"], "secondary": stats["limit_responses"]["secondary"],
            "primary_refusals": stats["limit_responses"]["primary"],
            "findings": len(found), "truth_exact": found == truth, "failed_items": failed_items}


def limit_bounds_s(result: dict, time_scale: float, core_limit: int = 5000,
                   graphql_limit: int = 5000) -> tuple[float, float]:
    """The least time GitHub's limits allow for the requests this scan sent (scaled seconds), twice.

    The first is the issue's: the points per minute as a rate (REST points ÷ 900 a minute,
    GraphQL points ÷ 2,000, each as the simulator charges them). The second is stricter: the
    simulator's minute is a window opened by its first request, whose 900 points may all go at
    once, so N points need only ``ceil(N / 900) - 1`` whole minutes. Both also hold the waits
    for resets the primary budget forces (``budget_outlook``) and requests × latency ÷ concurrency.
    """
    minute = 60 * time_scale
    rest_points = result["rest_requests"]                 # GETs: 1 point each
    graphql_points = result["graphql_queries"]            # a query: 1 point (a mutation would be 5)
    floor = result["requests"] * LATENCY_MS / 1000 / CONCURRENCY
    for used, limit in ((result["points_used"].get("core", 0), core_limit),
                        (result["points_used"].get("graphql", 0), graphql_limit)):
        budget = math.floor(BUFFER * limit)
        floor = max(floor, budget_outlook(used, budget_left=budget, budget_per_window=budget, now=0.0,
                                          reset_at=None, window_s=3600 * time_scale, rate_per_s=math.inf).wait_s)
    rate = max(rest_points / 900 * minute, graphql_points / 2000 * minute)
    windows = max(math.ceil(rest_points / 900) - 1, math.ceil(graphql_points / 2000) - 1, 0) * minute
    return max(floor, rate), max(floor, windows)


def pacer_only(rest_requests: int, graphql_queries: int, time_scale: float, pacing: str = "finish",
               core_limit: int = 5000, graphql_limit: int = 5000) -> float:
    """Virtual seconds the client takes for this mix against the simulator's limits (see above)."""
    import looptime

    from engine.github import GitHubClient
    from engine.sim.app import create_app
    from engine.sim.config import FaultConfig, SimConfig

    async def run() -> float:
        loop = asyncio.get_running_loop()

        def clock() -> float:
            return 1_700_000_000.0 + loop.time()

        app = create_app(SimConfig(repos=3, seed=11, time_scale=time_scale, core_limit=core_limit,
                                   graphql_limit=graphql_limit, faults=FaultConfig(latency_ms=LATENCY_MS)),
                         clock=clock)
        async with GitHubClient("http://sim.test", "bench-token", transport=httpx.ASGITransport(app),
                                time_scale=time_scale, clock=clock, rate_limit_buffer=BUFFER,
                                max_concurrent_requests=CONCURRENCY, pacing=pacing) as client:
            name = (await client.list_org_repos("acme"))[0]["name"]
            work = ["graphql"] * graphql_queries + ["rest"] * (rest_requests - 1)
            started = loop.time()

            async def caller() -> None:
                while work:
                    if work.pop() == "rest":
                        await client.get_repo("acme", name)
                    else:
                        await client.get_file_texts_graphql([("acme", name, "HEAD:README.md")])

            await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
            return loop.time() - started

    loop = looptime.new_event_loop(start=0)
    try:
        return loop.run_until_complete(run())
    finally:
        loop.close()


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else math.inf


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repos", type=int, default=1000, help="the big org (the issue's figure: 3000)")
    parser.add_argument("--small-repos", type=int, default=300, help="the orgs of the other cases")
    parser.add_argument("--pacing", choices=("finish", "spread"), default="finish")
    parser.add_argument("--time-scale", type=float, default=BIG_TIME_SCALE,
                        help="the big org's simulated time (0.1: an hour is 6 min); CPU time does not scale")
    args = parser.parse_args()
    big_scale, pacing = args.time_scale, args.pacing
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with Simulator(tmp, "big", big_scale, repos=args.repos) as url:
            big = await scan(tmp / "big.db", {"acme": url}, pacing, big_scale)
        bound, strict_bound = limit_bounds_s(big, big_scale)
        print(f"{args.repos} repos: {big} bound {bound:.2f}s (whole minutes: {strict_bound:.2f}s)", file=sys.stderr)
        paced = await asyncio.to_thread(pacer_only, big["rest_requests"], big["graphql_queries"], big_scale, pacing)
        print(f"pacer alone, virtual time: {paced:.2f}s", file=sys.stderr)

        small = SMALL_TIME_SCALE
        with Simulator(tmp, "ample", small, repos=args.small_repos) as url:
            ample = await scan(tmp / "ample.db", {"acme": url}, pacing, small)
        print(f"{args.small_repos} repos, ample budget: {ample}", file=sys.stderr)
        # limits whose budget (BUFFER × limit) the scan needs 80 % of
        core_limit = math.ceil(ample["points_used"]["core"] / 0.8 / BUFFER)
        graphql_limit = max(1, math.ceil(ample["points_used"].get("graphql", 0) / 0.8 / BUFFER))
        with Simulator(tmp, "tight", small, repos=args.small_repos, core_limit=core_limit,
                       graphql_limit=graphql_limit) as url:
            tight = await scan(tmp / "tight.db", {"acme": url}, pacing, small)
        print(f"{args.small_repos} repos, tight budget (core {core_limit}, graphql {graphql_limit}): {tight}",
              file=sys.stderr)
        mix = (ample["rest_requests"], ample["graphql_queries"], small, pacing)
        paced_ample = await asyncio.to_thread(pacer_only, *mix)
        paced_tight = await asyncio.to_thread(pacer_only, *mix, core_limit, graphql_limit)

        private, public = generate_key_pair()
        app = {"id": APP_ID, "public_key_pem": public}
        # Two orgs as an App, each org needing APP_BUDGETS of its installation's budget: limit-bound
        # (each waits once for its reset), so the two installations' buckets can work in parallel.
        limit = math.ceil(max(ample["points_used"]["core"], ample["points_used"].get("graphql", 0))
                          / APP_BUDGETS / BUFFER)
        orgs = {}
        for label, config in (("app", {**app, "limit": limit}), ("app-unlimited", app)):
            scale = APP_TIME_SCALE if label == "app" else small
            with Simulator(tmp, f"one-{label}", scale, repos=args.small_repos,
                           app={**config, "installation_id": 1}) as url:
                one = await scan(tmp / f"one-{label}.db", {"acme": url}, pacing, scale, private)
            with Simulator(tmp, f"a-{label}", scale, repos=args.small_repos, app={**config, "installation_id": 1}) \
                    as url_a, Simulator(tmp, f"b-{label}", scale, org="beta", repos=args.small_repos,
                                        app={**config, "installation_id": 2}) as url_b:
                two = await scan(tmp / f"two-{label}.db", {"acme": url_a, "beta": url_b}, pacing, scale, private)
            print(f"as an App ({label}): one org {one}; two orgs {two}", file=sys.stderr)
            orgs[label] = (one, two)
    (one_org, two_orgs), (one_free, two_free) = orgs["app"], orgs["app-unlimited"]
    app_bound, _ = limit_bounds_s(one_org, APP_TIME_SCALE, limit, limit)
    runs = (big, ample, tight, one_org, two_orgs, one_free, two_free)
    print(json.dumps({
        "pacing": pacing, "latency_ms": LATENCY_MS, "org_repos": args.repos, "org_time_scale": big_scale,
        "org_wall_s": big["wall_s"], "org_limit_bound_s": round(bound, 2),
        "org_wall_over_bound": ratio(big["wall_s"], bound),
        "org_strict_bound_s": round(strict_bound, 2), "org_wall_over_strict_bound": ratio(big["wall_s"], strict_bound),
        "org_requests": big["requests"], "org_engine_cpu_s": big["engine_cpu_s"], "org_sim_cpu_s": big["sim_cpu_s"],
        "org_engine_loop_starved_s": big["engine_loop_starved_s"],
        "pacer_wall_s": round(paced, 2), "pacer_wall_over_bound": ratio(paced, bound),
        "small_repos": args.small_repos, "small_time_scale": small,
        "ample_wall_s": ample["wall_s"], "tight_wall_s": tight["wall_s"],
        "tight_over_ample": ratio(tight["wall_s"], ample["wall_s"]),
        "pacer_tight_over_ample": ratio(paced_tight, paced_ample),
        "app_time_scale": APP_TIME_SCALE, "app_installation_limit": limit, "app_limit_bound_s": round(app_bound, 2),
        "one_org_app_wall_s": one_org["wall_s"], "two_orgs_app_wall_s": two_orgs["wall_s"],
        "two_orgs_over_one": ratio(two_orgs["wall_s"], one_org["wall_s"]),
        "two_orgs_over_one_unlimited": ratio(two_free["wall_s"], one_free["wall_s"]),
        "two_orgs_unlimited_engine_cpu_over_one": ratio(two_free["engine_cpu_s"], one_free["engine_cpu_s"]),
        "org_findings": big["findings"],
        "truth_exact": all(r["truth_exact"] for r in runs),
        "failed_items": sum(r["failed_items"] for r in runs),
        "violations": sum(r["violations"] for r in runs),
        "secondary_refusals": sum(r["secondary"] for r in runs),
        "primary_refusals": sum(r["primary_refusals"] for r in runs),
    }))


if __name__ == "__main__":
    asyncio.run(main())
