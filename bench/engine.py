"""Engine benchmark: throughput against a naive loop, memory at 100k items, resume latency.

Prints one line per figure and, last, one JSON object. Figures are ratios or
measured in this one run (the machine is shared and noisy: compare within a run).

* ``engine_vs_naive``: items/s of the whole engine (planning into SQLite,
  batches, workers, recorder, checkpoints, attempts rows — persistence on) on a
  zero-latency job ÷ items/s of ``asyncio.gather`` + a semaphore over the same
  job's ``process`` with nothing persisted. Target >= 1.0.
* ``engine_vs_naive_1ms_job``: the same with a job that waits 1 ms per item,
  the shape of real work (both bounded by concurrency ÷ latency).
* ``peak_rss_mb_100k``: peak RSS of a process running 100,000 items. Target < 150.
* ``resume_first_item_s``: from ``start()`` of an interrupted 100,000-item run
  to its first item done. Target < 1 s.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.api import Engine  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.jobs.synthetic import SyntheticJob  # noqa: E402
from engine.models import Item, RunState  # noqa: E402
from engine.processor import RunContext  # noqa: E402

N = int(os.environ.get("BENCH_ITEMS", "100000"))
CONCURRENCY = 20


def config():
    return load_config(None, env={}, overrides={"max_concurrent_requests": CONCURRENCY, "default_strategy": "parallel",
                                                "default_batch_size": 50, "max_batch_size": 100,
                                                "checkpoint_interval": 1000})


async def naive(n: int, latency_ms: float = 0) -> float:
    job = SyntheticJob()
    spec = {"items": n, "latency_ms": latency_ms}
    ctx = RunContext(run_id=0, config=config(), store=None, breakers=None, spec=spec)  # type: ignore[arg-type]
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(planned) -> None:
        async with sem:
            await job.process(Item(0, 0, 0, planned.key, planned.payload, 0, planned.lane), ctx)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(p) for p in job.plan({"items": n}, ctx)))
    return n / (time.perf_counter() - t0)


async def engine_rate(n: int, db: Path, latency_ms: float = 0) -> float:
    async with await Engine.open(db, config()) as eng:
        run_id = await eng.create_run("synthetic", {"items": n, "latency_ms": latency_ms})
        t0 = time.perf_counter()
        handle = await eng.start(run_id)
        state = await handle.wait()
        elapsed = time.perf_counter() - t0
        assert state is RunState.COMPLETED
        counts = await eng.store.counts(run_id)
        assert counts.done == n and counts.balanced()
        return n / elapsed


RSS_SCRIPT = """
import asyncio, resource, sys
sys.path.insert(0, sys.argv[2])
from bench.engine import engine_rate
from pathlib import Path
asyncio.run(engine_rate(int(sys.argv[3]), Path(sys.argv[1])))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

INTERRUPT_SCRIPT = """
import asyncio, sys
sys.path.insert(0, sys.argv[2])
from engine.api import Engine
from bench.engine import config
async def main():
    async with await Engine.open(sys.argv[1], config()) as eng:
        run_id = await eng.create_run("synthetic", {"items": int(sys.argv[3]), "latency_ms": 1})
        handle = await eng.start(run_id)
        while handle.runner.counts.done < 2000:
            await asyncio.sleep(0.01)
        print(run_id, flush=True)
        await asyncio.sleep(3600)
asyncio.run(main())
"""


async def resume_latency(n: int, db: Path) -> float:
    root = str(Path(__file__).resolve().parents[1])
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPT_SCRIPT, str(db), root, str(n)], stdout=subprocess.PIPE,
                            text=True)
    run_id = int(proc.stdout.readline())
    proc.kill()          # SIGKILL: no checkpoint, in-flight items left in flight
    proc.wait()
    async with await Engine.open(db, config()) as eng:
        await eng.store.write("UPDATE runs SET heartbeat_at=0 WHERE id=?", (run_id,))
        t0 = time.perf_counter()
        handle = await eng.start(run_id)
        start_done = None
        while True:
            if start_done is None and handle.runner.state is RunState.RUNNING:
                start_done = handle.runner.counts.done
            if start_done is not None and handle.runner.counts.done > start_done:
                break
            await asyncio.sleep(0.0005)
        first = time.perf_counter() - t0
        await handle.stop("bench done")
        return first


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        # first, while this process is small: a forked child's ru_maxrss counts the
        # parent's pages it inherited until exec, which would inflate the figure
        root = str(Path(__file__).resolve().parents[1])
        out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(tmpdir / "rss.db"), root, str(N)],
                             capture_output=True, text=True, check=True)
        peak_kb = int(out.stdout.strip().splitlines()[-1])
        peak_mb = peak_kb / 1024
        print(f"peak RSS running {N:,} items: {peak_mb:.0f} MB")
        naive_rate = await naive(N)
        rate = await engine_rate(N, tmpdir / "rate.db")
        print(f"naive gather+semaphore: {naive_rate:,.0f} items/s (no persistence)")
        print(f"engine: {rate:,.0f} items/s with persistence")
        slow_n = N // 5
        naive_slow = await naive(slow_n, 1.0)
        engine_slow = await engine_rate(slow_n, tmpdir / "slow.db", 1.0)
        print(f"1 ms job, {slow_n:,} items: engine {engine_slow:,.0f} items/s, naive {naive_slow:,.0f} items/s")
        resume_s = await resume_latency(N, tmpdir / "resume.db")
        print(f"resume of an interrupted {N:,}-item run: first item done after {resume_s * 1000:.0f} ms")
        print(json.dumps({
            "items": N, "concurrency": CONCURRENCY, "engine_items_per_s": round(rate),
            "naive_items_per_s": round(naive_rate), "engine_vs_naive": round(rate / naive_rate, 3),
            "engine_vs_naive_1ms_job": round(engine_slow / naive_slow, 3),
            "peak_rss_mb_100k": round(peak_mb, 1), "resume_first_item_s": round(resume_s, 3),
        }))


if __name__ == "__main__":
    asyncio.run(main())
