"""ast-index over a generated tree: throughput, scaling, memory and resume, locally and on Dask.

Measured in one run, over generated source files (four languages, directories
of 50): ``--files N`` (default 5,000: the short version, a few minutes on a
shared 2-core machine), or ``--long`` for the issue's corpus of 100,000 files:

* ``baseline_files_per_min`` — the same work in one process, without the
  engine: the kind's discovery walks the tree, the same parse function makes
  the same rows, and they go into the kind's tables in a SQLite database of
  their own (``executemany``, one commit per 200 files): the sequential
  program a user would otherwise write;
* ``files_per_min`` — ``ast-index`` through the whole engine (discovery,
  SQLite, the one writer) on ``--workers`` worker processes (default: one per
  core);
* ``speedup_per_core`` — (engine rate ÷ baseline rate) ÷ cores; target >= 0.8;
* ``cpu_efficiency`` — the loop's CPU seconds for the same files ÷ the CPU
  seconds the engine and its workers spent (the RSS sampler's own CPU left
  out): the share of the work that is useful. Unlike the speed-up it does not
  depend on what else the machine runs, so it says what the speed-up would be
  on idle cores; ``parent_cpu_share`` is the engine process's part of that CPU;
* ``peak_rss_mb`` — the largest sum of RSS over this process and all its
  children (workers, Dask nanny and workers), sampled every 50 ms (the list of
  children is refreshed every second: finding them scans every process of the
  machine); target < 500;
* ``resume_to_first_file_s`` — a run stopped after a few batches (as Ctrl-C
  does), then resumed as ``batchdeck index DIR`` resumes it (database opened,
  run started, the kind's worker-pool service started by the engine): seconds
  from the start of that to the first batch of files done; target < 1 s;
* ``dask_*`` — the same on a ``distributed.LocalCluster`` of one worker
  process per core.

On a shared machine every figure is pessimistic: the other tenants' load counts
against the workers but not against the baseline's single core as much.

    .venv/bin/python bench/index.py [--files N | --long] [--workers N] [--no-dask]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.api import Engine  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.jobs.ast_index.discovery import walk  # noqa: E402
from engine.jobs.ast_index.generate import generate_tree  # noqa: E402
from engine.jobs.ast_index.job import build_spec  # noqa: E402
from engine.jobs.ast_index.kind import KIND  # noqa: E402
from engine.jobs.ast_index.parse import parse_request  # noqa: E402
from engine.jobs.ast_index.schema import FILE_SQL, IMPORT_SQL, MIGRATIONS, SYMBOL_SQL  # noqa: E402
from engine.kinds import Connection  # noqa: E402

LONG_FILES = 100_000


class PeakRss:
    """Sum of RSS over this process and its descendants, sampled in a thread (whose CPU
    time, measurement and not work, is ``cpu_seconds``)."""

    def __init__(self) -> None:
        self.peak = 0
        self.cpu_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        me = psutil.Process()
        tree: list[psutil.Process] = [me]
        listed = 0.0
        while not self._stop.is_set():
            if time.monotonic() - listed >= 1.0:
                tree, listed = [me, *me.children(recursive=True)], time.monotonic()
            total = 0
            for proc in tree:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self.cpu_seconds = time.thread_time()
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def config(workers: int):
    return load_config(None, env={}, overrides={"max_concurrent_requests": min(50, 2 * workers),
                                                "default_strategy": "parallel", "checkpoint_interval": 1000,
                                                "ast_index": {"workers": workers}})


def connection(executor: Any, workers: int) -> Connection:
    """How this start reaches its workers: ``local`` or a ``distributed.Client``."""
    return Connection(extra={"executor": executor, "workers": workers})


async def done_so_far(handle: Any) -> int:
    return (await handle.source.snapshot()).counts.done


def baseline(tree: Path, files: int, scratch: Path) -> tuple[float, float]:
    """The same work as an index run, in a plain loop in this process: discover (the kind's
    walk), parse (the same function, the same rows) and store (the kind's tables, one
    ``executemany`` per table and a commit per 200 files). Files per second, CPU seconds per file."""
    db = sqlite3.connect(scratch / "baseline.db")
    for migration in MIGRATIONS:
        db.executescript(migration.sql)
    root = str(tree)
    started, cpu = time.perf_counter(), cpu_seconds()
    done = 0
    chunk: list[tuple] = []

    def flush() -> None:
        reply = parse_request({"root": root, "run_id": 1, "options": {"max_size": 1 << 20}, "files": chunk})
        for sql, key in ((FILE_SQL, "files"), (SYMBOL_SQL, "symbols"), (IMPORT_SQL, "imports")):
            db.executemany(sql, reply[key])
        db.commit()
        chunk.clear()

    for directory in walk(root):
        for found in directory.files[:files - done]:
            chunk.append((found.path, found.language, None, False, found.size, found.mtime_ns))
            done += 1
            if len(chunk) == 200:
                flush()
        if done >= files:
            break
    if chunk:
        flush()
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    db.close()
    return done / seconds, cpu / done


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have been waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


async def indexed(db: Path, spec: dict, executor: Any, workers: int,
                  rss: PeakRss) -> tuple[float, int, float, float]:
    """Seconds for a whole index run, the files it indexed, and the CPU seconds it took: all of
    them (this process and the worker processes; meaningful for the local pool only), and this
    process's own (the RSS sampler's CPU left out: measurement, not work)."""
    async with await Engine.open(db, config(workers)) as engine:
        run_id = await engine.create_run(KIND, spec, config(workers))
        # CPU over the span the rate is timed over (as the baseline's): opening the database,
        # loading the kinds and creating the run are a fixed cost, not a cost per file
        started, cpu, own = time.perf_counter(), cpu_seconds(), time.process_time()
        sampler = rss.cpu_seconds
        handle = await engine.start(run_id, connection=connection(executor, workers))
        # the run's services (the pool) are closed as its task ends: the workers are waited for,
        # so their CPU time is ours now
        state = await handle.wait()
        seconds = time.perf_counter() - started
        sampler = rss.cpu_seconds - sampler
        cpu, own = cpu_seconds() - cpu - sampler, time.process_time() - own - sampler
        done = (await engine.store.counts(run_id)).done
    assert state.value == "completed", state
    return seconds, done, cpu, own


async def resume_latency(db: Path, spec: dict, executor: Any, workers: int) -> float:
    """Stop a run after a few batches, then time a fresh engine's resume to its first file done."""
    async with await Engine.open(db, config(workers)) as engine:
        run_id = await engine.create_run(KIND, spec, config(workers))
        handle = await engine.start(run_id, connection=connection(executor, workers))
        while await done_so_far(handle) < 500 and not handle.task.done():
            await asyncio.sleep(0.01)
        await handle.stop("bench: interrupted")
    # as `batchdeck index DIR` resumes: the database opens, the run starts with a new pool
    started = time.perf_counter()
    async with await Engine.open(db, config(workers)) as engine:
        before = (await engine.store.counts(run_id)).done
        handle = await engine.start(run_id, connection=connection(executor, workers))
        while await done_so_far(handle) <= before:      # (zero until the runner has read the store)
            if handle.task.done():
                raise RuntimeError(f"the resumed run ended before a file was done: {await handle.wait()}")
            await asyncio.sleep(0.002)
        latency = time.perf_counter() - started
        await handle.stop("bench: done")
    return latency


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--files", type=int, default=5000, help="generated files (default 5,000: the short version)")
    size.add_argument("--long", action="store_const", dest="files", const=LONG_FILES,
                      help=f"the issue's corpus: {LONG_FILES:,} files")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--baseline-files", type=int, default=5000,
                        help="files the single-process loop parses (its rate is per file)")
    parser.add_argument("--no-dask", action="store_true")
    args = parser.parse_args()
    workers = args.workers
    scratch = Path(tempfile.mkdtemp(prefix="bench-index-"))
    began = time.perf_counter()

    def say(what: str) -> None:
        print(f"[{time.perf_counter() - began:6.1f} s] {what}", file=sys.stderr, flush=True)

    try:
        tree = scratch / "tree"
        say(f"generating {args.files:,} files")
        generate_tree(str(tree), args.files, specials=False)
        say(f"baseline: one process over {args.baseline_files:,} files")
        spec = build_spec(str(tree), order="path")
        base_rate, base_cpu_per_file = baseline(tree, args.baseline_files, scratch)

        say(f"ast-index on {workers} local worker processes")
        with PeakRss() as rss:
            seconds, done, cpu, own_cpu = await indexed(scratch / "local.db", spec, "local", workers, rss)
        rate = done / seconds
        result = {
            "bench": "index", "files": args.files, "workers": workers, "cores": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "baseline_files_per_min": round(base_rate * 60), "files_per_min": round(rate * 60),
            "speedup_per_core": round(rate / base_rate / workers, 3),
            "cpu_efficiency": round(base_cpu_per_file * done / cpu, 3),
            "parent_cpu_share": round(own_cpu / cpu, 3), "peak_rss_mb": round(rss.peak / 2**20, 1),
            "resume_to_first_file_s": round(await resume_latency(scratch / "resume.db", spec, "local", workers), 3),
        }
        say(f"local: {result['files_per_min']} files/min, x{result['speedup_per_core']} per core, "
            f"{result['peak_rss_mb']} MB peak")
        if not args.no_dask:
            import distributed

            say(f"ast-index on a LocalCluster of {workers} worker processes")
            with PeakRss() as rss:
                async with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                    asynchronous=True, dashboard_address=None) as cluster, \
                        distributed.Client(cluster, asynchronous=True) as client:
                    seconds, done, _, _ = await indexed(scratch / "dask.db", spec, client, workers, rss)
                    dask_rate = done / seconds
                    dask_resume = await resume_latency(scratch / "dask-resume.db", spec, client, workers)
            result.update({"dask_files_per_min": round(dask_rate * 60),
                           "dask_speedup_per_core": round(dask_rate / base_rate / workers, 3),
                           "dask_peak_rss_mb": round(rss.peak / 2**20, 1),
                           "dask_resume_to_first_file_s": round(dask_resume, 3)})
        result["bench_seconds"] = round(time.perf_counter() - began, 1)
        print(json.dumps(result))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
