"""Peak memory of a scan whose repository holds one 50 MB package-lock.json (issue 10, point 9).

The simulator serves the file (its own process, loopback); the scan runs in a child
process per mode so each reports its own peak RSS:

* ``whole`` — the path before streaming: the blob endpoint's response kept while its
  base64 is decoded, then the file decoded to text and ``json.loads``-ed whole;
* ``stream`` — today's path: the body dropped as soon as it is parsed, the base64
  decoded in place, the lockfile read an entry at a time (``parsers/streaming``).

Both must report the same findings (the planted package, at the same lines). Also
printed: the same two parses alone, in-process order-independent children, without
the HTTP part.

    python bench/bigfile.py [--mb 50]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.sim.hostile import big_package_lock  # noqa: E402

BYTES_PER_PACKAGE = 383


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def use_whole_file_path() -> None:
    """Put back the path before streaming, for the ``whole`` measurement."""
    from engine.jobs.ioc_scan import fetch, job
    from engine.jobs.ioc_scan.parsers import Parser

    async def old_read_blob(gh, owner, repo, sha):
        response = await gh.request("GET", f"/repos/{owner}/{repo}/git/blobs/{sha}", lane="read", conditional=False)
        data = response.data if isinstance(response.data, dict) else {}
        content = data.get("content") or ""
        return base64.b64decode(content) if data.get("encoding") == "base64" else content.encode("utf-8")

    Parser.parse_blob = lambda self, path, data, limits=None: self.parse(path, data)
    fetch.read_blob = job.read_blob = old_read_blob


async def child_scan(url: str, db: str) -> dict:
    from engine.api import Engine
    from engine.config import load_config
    from engine.jobs.ioc_scan.scan import (
        DEFAULT_IOCS,
        ScanTargets,
        build_spec,
        findings,
        make_client,
        parse_failures,
    )

    config = load_config(None, env={}, overrides={"max_concurrent_requests": 4})
    async with await Engine.open(db, config) as engine:
        spec = build_spec(ScanTargets(repos=["acme/big"]), [DEFAULT_IOCS], api_url=url)
        client = make_client(engine, url, "bench-token")
        run_id = await engine.create_run("ioc-scan", spec)
        t0 = time.perf_counter()
        state = await (await engine.start(run_id, github=client)).wait()
        wall = time.perf_counter() - t0
        await client.aclose()
        found = sorted((m.file_path, m.line_number, m.package_name, m.version) for m in await findings(engine.store,
                                                                                                      run_id))
        return {"state": str(state.value), "wall_s": round(wall, 2), "findings": found,
                "file_errors": await parse_failures(engine.store, run_id)}


def child_parse(path: str) -> dict:
    from engine.config import load_config
    from engine.jobs.ioc_scan.parsers import BlobLimits, parser_for

    data = Path(path).read_bytes()
    before = peak_rss_mb()
    t0 = time.perf_counter()
    deps = parser_for("package-lock.json").parse_blob("package-lock.json", data,
                                                      BlobLimits.from_config(load_config(None, env={})))
    return {"wall_s": round(time.perf_counter() - t0, 2), "deps": len(deps), "rss_before_parse_mb": before}


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=ROOT,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        mode, what, *rest = opts.child
        if mode == "whole":
            use_whole_file_path()
        result = asyncio.run(child_scan(*rest)) if what == "scan" else child_parse(*rest)
        print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lockfile = work / "repos" / "big" / "package-lock.json"
        lockfile.parent.mkdir(parents=True)
        lockfile.write_bytes(big_package_lock(int(opts.mb * (1 << 20) / BYTES_PER_PACKAGE)))
        size_mb = round(lockfile.stat().st_size / (1 << 20), 1)
        sim = subprocess.Popen([sys.executable, "-m", "engine.sim.server", "--repos-dir", str(work / "repos")],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
        try:
            url = sim.stdout.readline().strip()
            results = {}
            for mode in ("whole", "stream"):
                results[mode] = run_child(mode, "scan", url, str(work / f"{mode}.db"))
                results[f"{mode}_parse"] = run_child(mode, "parse", str(lockfile))
                print(mode, {k: v for k, v in results[mode].items() if k != "findings"},
                      results[f"{mode}_parse"], file=sys.stderr)
        finally:
            sim.terminate()
            sim.wait(timeout=10)
    whole, stream = results["whole"], results["stream"]
    print(json.dumps({
        "bench": "bigfile", "lockfile_mb": size_mb,
        "scan_peak_rss_mb_whole": whole["peak_rss_mb"], "scan_peak_rss_mb_stream": stream["peak_rss_mb"],
        "scan_rss_ratio": round(stream["peak_rss_mb"] / whole["peak_rss_mb"], 3),
        "parse_peak_rss_mb_whole": results["whole_parse"]["peak_rss_mb"],
        "parse_peak_rss_mb_stream": results["stream_parse"]["peak_rss_mb"],
        "parse_s_whole": results["whole_parse"]["wall_s"], "parse_s_stream": results["stream_parse"]["wall_s"],
        "scan_s_whole": whole["wall_s"], "scan_s_stream": stream["wall_s"],
        "same_findings": whole["findings"] == stream["findings"] and bool(stream["findings"]),
        "findings": len(stream["findings"]), "file_errors": len(stream["file_errors"]) + len(whole["file_errors"]),
    }))


if __name__ == "__main__":
    main()
