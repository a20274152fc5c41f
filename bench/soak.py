"""Crash soak: SIGKILL a `batchdeck scan` at many gated points under faults, resume each.

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


if __name__ == "__main__":
    main()
