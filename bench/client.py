"""How close the GitHub client gets to the physical ceiling over loopback.

The simulator answers every request after a fixed latency, so ``concurrency``
requests in flight can complete at most ``concurrency ÷ latency`` times a
second: the ceiling. Each case sends the same number of GETs at a given
concurrency and reports achieved requests/s ÷ ceiling, measured in this run.

Cases (each a function ``async (base_url, concurrency, requests) -> Result``,
listed in ``CASES``):

* ``engine_persisted`` — the whole engine with persistence on: a run of the
  ``http-get`` job kind, each item one GET through the client;
* ``client_aiohttp`` — :class:`engine.github.GitHubClient` on its default
  aiohttp transport, a fixed pool of ``concurrency`` workers;
* ``naive_httpx`` — what one writes first: a default ``httpx.AsyncClient`` and
  ``asyncio.gather`` of one task per request behind a semaphore.

The simulator runs in its own process (GitHub is not in ours); its limits are raised out of the way (core bucket, points per
minute) so the figures measure transport and client overhead, not pacing.
Prints one line per case; the last line is one JSON object with every ratio.

    .venv/bin/python bench/client.py [--requests 20000] [--latency-ms 50] [--concurrency 20 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx

# a script run from bench/ puts bench/ first on sys.path, where a bench/engine.py would shadow the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.api import Engine  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.github import GitHubClient  # noqa: E402
from engine.models import RunState  # noqa: E402

TOKEN = "bench-token"
ORG = "acme"


@dataclass
class Result:
    requests: int
    ok: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.requests / self.seconds


Case = Callable[[str, int, int, str], Awaitable[Result]]


async def client_aiohttp(base_url: str, concurrency: int, requests: int, path: str) -> Result:
    async with GitHubClient(base_url, TOKEN, transport="aiohttp", max_connections=max(concurrency, 1),
                            points_per_minute=None) as client:
        await client.get_json(path)                      # the first request probes the bucket; not timed
        left = requests
        ok = 0

        async def worker() -> None:
            nonlocal left, ok
            while left > 0:
                left -= 1
                response = await client.request("GET", path, conditional=False)
                ok += response.status == 200

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Result(requests, ok, time.perf_counter() - start)


async def naive_httpx(base_url: str, concurrency: int, requests: int, path: str) -> Result:
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/vnd.github+json"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as http:
        await http.get(path)
        gate = asyncio.Semaphore(concurrency)

        async def one() -> bool:
            async with gate:
                return (await http.get(path)).status_code == 200

        start = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(requests)))
        return Result(requests, sum(results), time.perf_counter() - start)


async def engine_persisted(base_url: str, concurrency: int, requests: int, path: str) -> Result:
    """The whole engine: items planned into SQLite, fed in batches to a fixed worker pool, each
    a GET through the client, results committed by the recorder (persistence on)."""
    overrides = {"max_concurrent_requests": concurrency, "default_strategy": "parallel",
                 "default_batch_size": 50, "max_batch_size": 100, "checkpoint_interval": 1000}
    config = load_config(None, env={}, overrides=overrides)
    with tempfile.TemporaryDirectory() as tmp:
        async with await Engine.open(Path(tmp) / "bench.db", config) as engine:
            client = GitHubClient(base_url, TOKEN, config=config, transport="aiohttp",
                                  max_connections=max(concurrency, 1), points_per_minute=None)
            await client.get_json(path)                  # the probe, as in the other cases
            run_id = await engine.create_run("http-get", {"items": requests, "path": path})
            start = time.perf_counter()
            state = await (await engine.start(run_id, github=client)).wait()
            seconds = time.perf_counter() - start
            await client.aclose()
            assert state is RunState.COMPLETED, state
            done = (await engine.store.counts(run_id)).done
            return Result(requests, done, seconds)


CASES: dict[str, Case] = {"engine_persisted": engine_persisted, "client_aiohttp": client_aiohttp,
                          "naive_httpx": naive_httpx}


@contextlib.contextmanager
def simulator_process(latency_ms: float):
    """The simulator in its own process, as GitHub is: the client's loop is not the server's."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "sim.yaml"
        cfg.write_text(f"repos: 3\nseed: 1\ncore_limit: 1000000000\nsecondary_points_per_minute: 1000000000\n"
                       f"secondary_max_concurrent: 1000\nfaults: {{latency_ms: {latency_ms}}}\n")
        proc = subprocess.Popen([sys.executable, "-m", "engine.sim.server", "--config", str(cfg)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            yield proc.stdout.readline().strip()
        finally:
            proc.terminate()
            proc.wait()


async def main(requests: int, latency_ms: float, concurrencies: list[int], cases: list[str]) -> dict:
    ratios: dict[str, float] = {}
    with simulator_process(latency_ms) as base_url:
        server = SimpleNamespace(base_url=base_url)
        async with httpx.AsyncClient(base_url=server.base_url) as side:
            repo = (await side.get(f"/orgs/{ORG}/repos", headers={"Authorization": f"Bearer {TOKEN}"})).json()[0]
            path = f"/repos/{ORG}/{repo['name']}"
            for name in cases:
                for concurrency in concurrencies:
                    await side.post("/_sim/reset")
                    result = await CASES[name](server.base_url, concurrency, requests, path)
                    ceiling = concurrency / (latency_ms / 1000.0)
                    ratio = result.per_s / ceiling
                    ratios[f"{name}_c{concurrency}"] = round(ratio, 3)
                    print(f"{name:<16} c={concurrency:<3} {result.requests} req ({result.ok} ok) in "
                          f"{result.seconds:6.1f}s  {result.per_s:7.0f} req/s  ceiling {ceiling:5.0f}  "
                          f"ratio {ratio:.3f}", flush=True)
    return {"latency_ms": latency_ms, "requests": requests, "ratios": ratios}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    summary = asyncio.run(main(args.requests, args.latency_ms, args.concurrency, args.cases))
    print(json.dumps(summary))
