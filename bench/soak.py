"""Soaks: SIGKILL a `batchdeck scan` at many gated points (default), or a fault soak (``faults``).

``python bench/soak.py faults [--items 20000] [--sync-items 1000]`` is issue 10's fault
soak: an ioc-scan of about ``--items`` items and an issue-sync of ``--sync-items``
issues against one loopback simulator answering 10 % 5xx, 2 % timeouts (the server
hangs past the client's timeout, then drops: abandoned requests), 1 % resets and
periodic 5xx bursts, with a secondary points limit low enough that the client trips
it (refusals with and without ``retry-after``) and a core bucket small enough to run
dry at least twice. Then the failed items of both runs are replayed with the faults
off. Checked: every item done or failed with its reason, the replays complete, the
scan's findings equal the simulator's truth, and ``/_sim/stats`` counts zero
violations. ``tests/reliability/test_fault_soak.py`` runs a short one.

The crash soak:

The long version of tests/reliability/test_crash_matrix.py. For each point (after N
repositories listed, or when the N-th item starts; chosen at random with a fixed seed)
a scan runs against a loopback simulator answering with 5xx, timeouts and resets,
is held at the point by tests/reliability/crash_driver.py and killed with SIGKILL,
then resumed until it completes. Checked each time: every item recorded once, no item
left in flight, PRAGMA integrity_check ok; reported: findings recall against the
simulator's truth and items that ended failed (their errors are the faults').

    python bench/soak.py [--points 12] [--repos 60] [--error-rate 0.1]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))       # the engine package, not bench/engine.py
DRIVER = ROOT / "tests" / "reliability" / "crash_driver.py"
IOCS = ROOT / "sample_configs" / "iocs" / "shai-hulud-2-packages.csv"
ENV = {**os.environ, "GITHUB_TOKEN": "soak-token"}


def start_simulator(repos: int, error_rate: float, workdir: Path) -> tuple[subprocess.Popen, str]:
    config = workdir / "sim.yaml"
    config.write_text(f"sim:\n  faults:\n    error_rate: {error_rate}\n    timeout_rate: 0.02\n"
                      "    hang_s: 0.5\n    reset_rate: 0.01\n")
    proc = subprocess.Popen([sys.executable, "-m", "engine.sim.server", "--repos", str(repos), "--seed", "21",
                             "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, cwd=ROOT)
    return proc, proc.stdout.readline().strip()


def one_point(url: str, db: Path, point: str, n: int) -> dict:
    args = ["scan", "--headless", "--org", "acme", "--include-archived", "--include-forks", "--api-url", url,
            "--iocs", str(IOCS), "--db", str(db), "--format", "json"]
    proc = subprocess.Popen([sys.executable, str(DRIVER), point, str(n), "--", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=ENV)
    held = proc.stdout.readline().strip() == "HELD"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    resumes = 0
    while resumes < 5:
        resumes += 1
        subprocess.run([sys.executable, "-m", "console.cli", "resume", "1", "--headless", "--db", str(db)],
                       capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=600)
        with sqlite3.connect(db) as conn:
            if conn.execute("SELECT state FROM runs WHERE id=1").fetchone()[0] == "completed":
                break
    with sqlite3.connect(db) as conn:
        state = conn.execute("SELECT state FROM runs WHERE id=1").fetchone()[0]
        states = dict(conn.execute("SELECT state, count(*) FROM items WHERE run_id=1 GROUP BY state"))
        total, distinct = conn.execute("SELECT count(*), count(DISTINCT key) FROM items WHERE run_id=1").fetchone()
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        found = {tuple(r) for r in conn.execute(
            "SELECT repo, file_path, package_name, version, kind FROM findings WHERE run_id=1")}
    return {"point": f"{point}:{n}", "held": held, "state": state, "resumes": resumes, "items": total,
            "each_once": total == distinct, "in_flight": states.get("in_flight", 0),
            "failed": states.get("failed", 0), "integrity": integrity, "found": found}


def main() -> None:
    if sys.argv[1:2] == ["faults"]:
        print(json.dumps(asyncio.run(fault_soak_main(sys.argv[2:]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=12)
    parser.add_argument("--repos", type=int, default=60)
    parser.add_argument("--error-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=5)
    opts = parser.parse_args()
    rng = random.Random(opts.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sim, url = start_simulator(opts.repos, opts.error_rate, workdir)
        try:
            truth = {(t["repo"], t["path"], t["package"], t["version"], t["kind"])
                     for t in httpx.get(f"{url}/_sim/truth").json()["findings"]}
            points = [("plan", rng.randint(1, opts.repos))] + [
                ("process", rng.randint(1, opts.repos * 8)) for _ in range(opts.points - 1)]
            results = []
            for i, (point, n) in enumerate(points):
                result = one_point(url, workdir / f"soak-{i}.db", point, n)
                result["recall"] = round(len(result.pop("found") & truth) / max(1, len(truth)), 4)
                results.append(result)
                print(json.dumps(result), file=sys.stderr)
        finally:
            sim.terminate()
            sim.wait(timeout=10)
    ok = [r for r in results if r["state"] == "completed" and r["each_once"] and r["in_flight"] == 0
          and r["integrity"] == "ok"]
    print(json.dumps({
        "bench": "soak", "points": len(results), "killed_at_gate": sum(r["held"] for r in results),
        "completed_each_item_once_integrity_ok": len(ok), "min_recall": min(r["recall"] for r in results),
        "failed_items_max": max(r["failed"] for r in results), "error_rate": opts.error_rate,
        "repos": opts.repos, "wall_s": round(time.monotonic() - started, 1),
    }))


# ------------------------------------------------------------------------------ the fault soak
ITEMS_PER_REPO = 6          # items per generated repository, about (its repo item, its lockfiles; measured)
SOAK_SCALE = 0.01           # default --time-scale: a simulated hour lasts 36 s, a secondary penalty 0.6 s


def faults_on(scale: float) -> dict:
    """The issue's faults; bursts of 60 % 5xx for 200 simulated seconds every 2,000; and a
    secondary block at the 40th request and every 300th after it, so blocks come however
    slowly a loaded machine sends (the points limit below trips only when it is fast)."""
    return {"error_rate": 0.10, "timeout_rate": 0.02, "reset_rate": 0.01, "hang_s": 1.5, "timeout_status": None,
            "bursts": {"every_s": 2000 * scale, "duration_s": 200 * scale, "error_rate": 0.6},
            "secondary_block_at": [40 + 300 * k for k in range(1000)]}


FAULTS_OFF = {"error_rate": 0, "timeout_rate": 0, "reset_rate": 0, "bursts": None, "secondary_block_at": []}


def fault_sim(repos: int, workdir: Path, seed: int, scale: float) -> tuple[subprocess.Popen, str]:
    config = {"sim": {"time_scale": scale, "seed": seed,
                      # the client must run the bucket dry: about half the scan's REST requests
                      "core_limit": max(20, repos // 2),
                      # GraphQL's secondary points below the 2,000 a minute GitHub documents and the
                      # client paces to, so the scan trips it: refusals with and without retry-after
                      # (a scaled minute is short: about 25 queries a second trip it). REST keeps
                      # its 900: content-creating POSTs a few ms apart at this scale (GitHub asks
                      # for a second) would reach a block set by the one before them.
                      "secondary_graphql_points_per_minute": max(20, round(3000 * scale)),
                      "secondary_retry_after": "sometimes", "secondary_max_concurrent": 12,
                      "faults": faults_on(scale)}}
    (workdir / "faults.json").write_text(json.dumps(config))
    proc = subprocess.Popen([sys.executable, "-m", "engine.sim.server", "--repos", str(repos), "--seed", str(seed),
                             "--config", str(workdir / "faults.json")], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    return proc, proc.stdout.readline().strip()


def soak_config(scale: float):
    from engine.config import load_config

    return load_config(None, env={}, overrides={"github": {"time_scale": scale, "request_timeout": 1.0},
                                                "max_concurrent_requests": 8, "retry_attempts": 3,
                                                "retry_delay_base": 0.1,
                                                # a 30 s recovery is 3,000 simulated seconds at 0.01
                                                "breaker_recovery_timeout": max(0.05, 300 * scale)})


async def run_to_end(engine, run_id: int, client) -> dict:
    started = time.monotonic()
    state = await (await engine.start(run_id, github=client)).wait()
    rows = await engine.store.fetchall("SELECT state, count(*), sum(last_error IS NULL OR last_error = '') FROM items "
                                       "WHERE run_id=? GROUP BY state", (run_id,))
    by_state = {r[0]: r[1] for r in rows}
    unexplained = sum(r[2] or 0 for r in rows if r[0] == "failed")
    reasons = await engine.store.fetchall("SELECT key, last_error FROM items WHERE run_id=? AND state='failed' "
                                          "LIMIT 3", (run_id,))
    return {"run": run_id, "state": state.value, "wall_s": round(time.monotonic() - started, 1),
            "failed_sample": [f"{key}: {str(error)[:160]}" for key, error in reasons],
            "items": sum(by_state.values()), "done": by_state.get("done", 0), "failed": by_state.get("failed", 0),
            "failed_without_reason": unexplained, "other": sum(v for k, v in by_state.items()
                                                              if k not in ("done", "failed"))}


async def replay_failed(engine, run_id: int, make) -> dict | None:
    if not (await engine.store.counts(run_id)).failed:
        return None
    child = await engine.replay(run_id)
    client = make()
    try:
        return await run_to_end(engine, child, client)
    finally:
        await client.aclose()


async def soak_scan(url: str, db: Path, scale: float) -> dict:
    from engine.api import Engine
    from engine.jobs.ioc_scan.scan import DEFAULT_IOCS, ScanTargets, build_spec, findings, make_client

    async with await Engine.open(db, soak_config(scale)) as engine, httpx.AsyncClient(base_url=url) as sim:
        spec = build_spec(ScanTargets(orgs=["acme"]), [DEFAULT_IOCS], include_archived=True, include_forks=True,
                          api_url=url)
        run_id = await engine.create_run("ioc-scan", spec)
        client = make_client(engine, url, "soak-token")
        try:
            first = await run_to_end(engine, run_id, client)
        finally:
            await client.aclose()
        during = (await sim.get("/_sim/stats")).json()
        await sim.post("/_sim/faults", json=FAULTS_OFF)
        replay = await replay_failed(engine, run_id, lambda: make_client(engine, url, "soak-token"))
        runs = [run_id] + ([replay["run"]] if replay else [])
        got = {(m.repo, m.file_path, m.package_name, m.version, m.kind)
               for rid in runs for m in await findings(engine.store, rid)}
        truth = {(t["repo"], t["path"], t["package"], t["version"], t["kind"])
                 for t in (await sim.get("/_sim/truth")).json()["findings"]}
        row = await engine.store.fetchone("SELECT key FROM items WHERE run_id=? AND key LIKE 'repo:%' LIMIT 1",
                                          (run_id,))
    return {"scan": first, "replay": replay, "findings_equal_truth": got == truth, "findings": len(got),
            "stats_during": during, "a_repo": row[0].removeprefix("repo:")}


async def soak_sync(url: str, db: Path, items: int, repo: str, scale: float) -> dict:
    from engine.api import Engine
    from engine.github import GitHubClient
    from engine.jobs.issue_sync.kind import KIND
    from engine.jobs.issue_sync.tree import load_tree

    example = ROOT / "sample_configs" / "planning"
    tree = load_tree(example)
    nodes = [n.to_dict() for n in tree.nodes.values()]
    tasks = [n for n in nodes if n["kind"] == "task"]
    part_template = next(n for n in nodes if n["kind"] == "part")
    root = next(n["sid"] for n in nodes if n.get("parent") is None)
    copy = 0
    part: dict | None = None
    while len(nodes) < items:                # more tasks like the example's, ...
        if part is None or copy % 99 == 0:   # ... in parts of 99 under the root: GitHub holds at
            part = {**part_template, "sid": f"part:soak#{copy // 99 + 1}",   # most 100 sub-issues an issue
                    "title": f"Soak tasks ({copy // 99 + 1})", "parent": root, "depends_on": [], "github": None}
            nodes.append(part)
        template = tasks[copy % len(tasks)]
        copy += 1
        nodes.append({**template, "sid": f"{template['sid']}-soak{copy}", "title": f"{template['title']} ({copy})",
                      "parent": part["sid"], "depends_on": [], "github": None})
    nodes = nodes[:max(items, 1)] if items < len(nodes) else nodes
    async with await Engine.open(db, soak_config(scale)) as engine, httpx.AsyncClient(base_url=url) as sim:
        await sim.post("/_sim/faults", json=faults_on(scale))

        def make():
            return GitHubClient(url, "soak-token", config=engine.config, time_scale=scale)

        run_id = await engine.create_run(KIND, {"repo": repo, "root": str(example), "links": "sub-issues",
                                                "api_url": url, "nodes": nodes})
        client = make()
        try:
            first = await run_to_end(engine, run_id, client)
        finally:
            await client.aclose()
        await sim.post("/_sim/faults", json=FAULTS_OFF)
        replay = await replay_failed(engine, run_id, make)
    return {"sync": first, "replay": replay, "nodes": len(nodes)}


async def fault_soak_main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="soak.py faults", description="issue 10's fault soak")
    parser.add_argument("--items", type=int, default=20_000, help="scan items (about; %(default)s)")
    parser.add_argument("--sync-items", type=int, default=1_000, help="issues to sync (%(default)s)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--time-scale", type=float, default=SOAK_SCALE)
    opts = parser.parse_args(argv)
    return await fault_soak(opts.items, opts.sync_items, opts.seed, opts.time_scale)


async def fault_soak(items: int, sync_items: int, seed: int = 7, scale: float = SOAK_SCALE) -> dict:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        repos = max(5, items // ITEMS_PER_REPO)
        sim, url = fault_sim(repos, workdir, seed, scale)
        try:
            scan = await soak_scan(url, workdir / "scan.db", scale)
            print("scan", json.dumps({k: v for k, v in scan.items() if k != "stats_during"}), file=sys.stderr)
            sync = await soak_sync(url, workdir / "sync.db", sync_items, scan.pop("a_repo"), scale) if sync_items else None
            print("sync", json.dumps(sync), file=sys.stderr)
            async with httpx.AsyncClient(base_url=url) as client:
                stats = (await client.get("/_sim/stats")).json()
        finally:
            sim.terminate()
            sim.wait(timeout=10)
    during = scan.pop("stats_during")

    def ended(part: dict | None, replay: dict | None) -> bool:
        return part is not None and part["failed_without_reason"] == 0 and part["other"] == 0 and (
            replay is None or (replay["state"] == "completed" and replay["failed"] == 0))

    return {
        "bench": "fault_soak", "scan_items": scan["scan"]["items"], "scan_failed": scan["scan"]["failed"],
        "scan_state": scan["scan"]["state"], "scan_wall_s": scan["scan"]["wall_s"],
        "scan_replayed": scan["replay"]["items"] if scan["replay"] else 0,
        "scan_ok": ended(scan["scan"], scan["replay"]), "findings_equal_truth": scan["findings_equal_truth"],
        "sync_items": sync["sync"]["items"] if sync else 0, "sync_failed": sync["sync"]["failed"] if sync else 0,
        "sync_state": sync["sync"]["state"] if sync else None, "sync_wall_s": sync["sync"]["wall_s"] if sync else 0,
        "sync_replayed": sync["replay"]["items"] if sync and sync["replay"] else 0,
        "sync_ok": ended(sync["sync"], sync["replay"]) if sync else None,
        "faults_injected": stats["faults_injected"], "secondary_refusals": stats["limit_responses"]["secondary"],
        "secondary_refusals_in_scan": during["limit_responses"]["secondary"],
        "violations_in_scan": during["violations"],
        "primary_refusals": stats["limit_responses"]["primary"], "core_limit": max(20, repos // 2),
        "core_points_used": stats["points_used"]["core"],
        "peak_concurrency": stats["peak_concurrency"], "violations": stats["violations"],
        "violations_by_kind": stats["violations_by_kind"],
        # refused by a block they reached before any refusal of it was delivered: not violations
        "in_flight_at_block": stats["in_flight_at_block"],
        # refused by a block, read after a refusal went out on another connection: unprovable either way
        "after_refusal_elsewhere": stats["after_refusal_elsewhere"], "time_scale": scale,
        "wall_s": round(time.monotonic() - started, 1),
    }


if __name__ == "__main__":
    main()
