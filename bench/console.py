"""Console benchmark: refresh cost at scale, and the longest event-loop stall in a demo run.

Prints one line per figure and, last, one JSON object. Everything is measured
in this one run on whatever machine runs it (shared and noisy: read the figures
against their targets, not against another machine's).

* ``refresh_ms`` — one console refresh (``source.snapshot()`` + every pane's
  update) on a run of 100,000 items in 5,000 batches, the batch pane holding
  all 5,000. Median and worst of 40, for the in-process source (the runner's
  memory) and for the attached source (rebuilt from SQLite, as ``batchdeck
  console`` does). ``refresh_paint_ms`` adds the repaint of the screen that
  follows (headless, 120×40). Target: refresh under 50 ms.
* ``max_stall_ms`` — the longest delay of a 10 ms heartbeat task during a
  60-second demo-like run with the console open at 4 Hz (headless, 120×40):
  a quarter with no key pressed (``steady_stall_ms``), then an operator
  pressing a key every 2.5 s (panes, zoom, filter, theme; the worst stall
  after each key in ``stall_per_key_ms``). The
  run is the demo's IOC scan against the simulator on loopback, or the
  synthetic job with ``--job synthetic``. Target under 100 ms.

Usage: ``python bench/console.py [--seconds 60] [--items 100000] [--job demo|synthetic]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from console.app import BatchdeckApp  # noqa: E402
from engine.api import Engine  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.models import RunState  # noqa: E402

BATCH = 20
WARM_UP_S = 3.0
KEYS = ("1", "2", "3", "4", "z", "z", "5", "1", "slash", "escape", "t", "t", "t")


def scale_config():
    return load_config(None, env={}, overrides={
        "max_concurrent_requests": 50, "default_strategy": "parallel", "default_batch_size": BATCH,
        "min_batch_size": 1, "max_batch_size": BATCH, "checkpoint_interval": 5000})


async def wait_for(condition, pilot, bound: float = 120.0) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("bench: timed out waiting for the console")
        await pilot.pause(0.05)


async def measure_refresh(app: BatchdeckApp, pilot, rounds: int = 40) -> tuple[list[float], list[float]]:
    refresh, painted = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        await app.refresh_snapshot()
        t1 = time.perf_counter()
        await pilot.pause()
        t2 = time.perf_counter()
        refresh.append((t1 - t0) * 1000)
        painted.append((t2 - t0) * 1000)
    return refresh, painted


async def refresh_at_scale(items: int) -> dict:
    """Run ``items`` through the synthetic job, then time console refreshes over it."""
    folder = tempfile.mkdtemp(prefix="batchdeck-bench-")
    engine = await Engine.open(Path(folder) / "scale.db", scale_config())
    try:
        run_id = await engine.create_run("synthetic", {"items": items, "latency_ms": 0, "seed": 1})
        handle = await engine.start(run_id)
        t0 = time.perf_counter()
        await handle.wait()
        print(f"setup: {items:,} items run in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
        out: dict = {}
        for mode in ("live", "attached"):
            app = BatchdeckApp(engine, source=handle.source if mode == "live" else None, run_id=run_id,
                               refresh_hz=0)
            async with app.run_test(size=(120, 40)) as pilot:
                pane = app.main.batches
                await wait_for(lambda pane=pane: pane.total_rows >= items // BATCH, pilot)
                await app.workers.wait_for_complete()
                refresh, painted = await measure_refresh(app, pilot)
                out[mode] = {
                    "batches": pane.total_rows,
                    "refresh_ms_median": round(statistics.median(refresh), 2),
                    "refresh_ms_max": round(max(refresh), 2),
                    "refresh_paint_ms_median": round(statistics.median(painted), 2),
                }
        return out
    finally:
        await engine.close()


class StallProbe:
    """A task that sleeps 10 ms at a time and records how late it wakes."""

    def __init__(self, period: float = 0.01) -> None:
        self.period = period
        self.worst = 0.0
        self.window = 0.0          # worst since the caller last reset it
        self.samples = 0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(self.period)
            lag = time.perf_counter() - t0 - self.period
            self.worst = max(self.worst, lag)
            self.window = max(self.window, lag)
            self.samples += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def start_demo_run(engine: Engine, folder: Path):
    """The demo's scan: simulator on loopback (a child process), IOC scan of its org."""
    from engine.jobs.ioc_scan.scan import DEFAULT_IOCS, ScanTargets, build_spec, make_client

    sim = subprocess.Popen([sys.executable, "-m", "engine.sim.server", "--repos", "3000", "--seed", "7",
                            "--latency-ms", "30", "--org", "acme"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    url = (await asyncio.to_thread(sim.stdout.readline)).strip()
    if not url.startswith("http"):
        sim.kill()
        raise RuntimeError("the simulator did not start")
    config = load_config(None, env={}, overrides={"api_url": url})
    spec = build_spec(ScanTargets(orgs=["acme"]), [DEFAULT_IOCS], include_archived=True, include_forks=True,
                      api_url=url)
    run_id = await engine.create_run("ioc-scan", spec, config)
    client = make_client(engine, url, "demo-token")
    handle = await engine.start(run_id, github=client)

    async def cleanup() -> None:
        await client.aclose()
        sim.terminate()
        await asyncio.to_thread(sim.wait, 10)
    return handle, cleanup, f"ioc-scan of 3,000 simulated repositories ({url})"


async def start_synthetic_run(engine: Engine, items: int):
    run_id = await engine.create_run("synthetic", {"items": items, "latency_ms": 20, "fail_rate": 0.05,
                                                   "permanent_fail_rate": 0.005, "seed": 1})
    handle = await engine.start(run_id)

    async def cleanup() -> None:
        return None
    return handle, cleanup, f"synthetic job, {items:,} items of 20 ms, 5% transient failures"


async def stall_during_run(seconds: float, job: str, items: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="batchdeck-bench-"))
    engine = await Engine.open(folder / "demo.db", load_config(None, env={}, overrides={
        "retry_delay_base": 0.2, "max_concurrent_requests": 20}))
    try:
        if job == "demo":
            handle, cleanup, what = await start_demo_run(engine, folder)
        else:
            handle, cleanup, what = await start_synthetic_run(engine, items)
        print(f"stall run: {what}", file=sys.stderr)
        app = BatchdeckApp(engine, source=handle.source, refresh_hz=4.0)
        probe = StallProbe()
        per_key: dict[str, float] = {}
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(WARM_UP_S)     # the first paint and history loads are start-up, not the run
            probe.start()
            started = time.monotonic()
            # The first quarter with no keys: the steady state (refresh ticks, events, the engine).
            await pilot.pause(seconds / 4)
            steady = probe.window
            presses = 0
            while time.monotonic() - started < seconds:
                key = KEYS[presses % len(KEYS)]
                probe.window = 0.0
                await pilot.press(key)
                await pilot.pause(2.5)
                per_key[key] = max(per_key.get(key, 0.0), probe.window)
                presses += 1
            await probe.stop()
            done = app.snapshot.counts.done if app.snapshot else 0
            state = app.snapshot.run.state if app.snapshot else None
            if state == RunState.RUNNING:
                await handle.stop("bench over")
            else:
                await handle.wait()
        await cleanup()
        return {"job": job, "seconds": seconds, "max_stall_ms": round(probe.worst * 1000, 1),
                "steady_stall_ms": round(steady * 1000, 1),
                "per_key_ms": {k: round(v * 1000, 1) for k, v in per_key.items()},
                "probe_samples": probe.samples, "items_done": done, "keys_pressed": presses}
    finally:
        await engine.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--job", choices=("demo", "synthetic"), default="demo")
    args = parser.parse_args()

    scale = await refresh_at_scale(args.items)
    for mode, figures in scale.items():
        print(f"refresh ({mode}, {args.items:,} items, {figures['batches']:,} batches in the pane): "
              f"median {figures['refresh_ms_median']} ms, worst {figures['refresh_ms_max']} ms, "
              f"with repaint {figures['refresh_paint_ms_median']} ms (target < 50 ms)")
    stall = await stall_during_run(args.seconds, args.job, args.items)
    print(f"longest event-loop stall in a {args.seconds:g}s {stall['job']} run with the console open: "
          f"{stall['max_stall_ms']} ms (target < 100 ms; {stall['probe_samples']:,} heartbeats, "
          f"{stall['items_done']:,} items done)")
    print(f"  with no key pressed (first quarter): {stall['steady_stall_ms']} ms; worst after each key: "
          + ", ".join(f"{k} {v}" for k, v in stall["per_key_ms"].items()))
    worst_refresh = max(f["refresh_ms_median"] for f in scale.values())
    print(json.dumps({
        "items": args.items,
        "batches": scale["live"]["batches"],
        "refresh_ms_live_median": scale["live"]["refresh_ms_median"],
        "refresh_ms_live_max": scale["live"]["refresh_ms_max"],
        "refresh_ms_attached_median": scale["attached"]["refresh_ms_median"],
        "refresh_ms_attached_max": scale["attached"]["refresh_ms_max"],
        "refresh_paint_ms_live_median": scale["live"]["refresh_paint_ms_median"],
        "refresh_vs_target": round(worst_refresh / 50.0, 3),
        "stall_job": stall["job"],
        "stall_seconds": stall["seconds"],
        "max_stall_ms": stall["max_stall_ms"],
        "steady_stall_ms": stall["steady_stall_ms"],
        "stall_per_key_ms": stall["per_key_ms"],
        "stall_vs_target": round(stall["max_stall_ms"] / 100.0, 3),
    }))


if __name__ == "__main__":
    asyncio.run(main())
