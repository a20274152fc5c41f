"""Peak memory of a scan whose repository holds one 50 MB package-lock.json (issue 10, point 9).

The simulator serves the file (its own process, loopback); the scan runs in a child
process per mode so each reports its own peak RSS:

* ``json`` — the path before raw downloads, forced: the blob endpoint's JSON answer
  (base64 inside JSON) held while it is decoded, the lockfile then read an entry at a
  time from the decoded bytes (``parsers/streaming``);
* ``raw`` — today's path: the blob read raw (``application/vnd.github.raw+json``),
  streamed to a spooled temporary file (``GitHubClient.download``) and parsed from it.

Both must report the same findings (the planted package, at the same lines). Also
printed: the same two parses alone (bytes in memory vs the file), in child processes,
without the HTTP part.

    python bench/bigfile.py [--mb 50]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
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
    """This process's peak RSS: ``VmHWM``, which starts afresh at exec. (``ru_maxrss`` does
    not: a child inherits the RSS its parent had when it forked as a floor, which made every
    child here report the parent's ~192 MB of generated lockfile.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def use_json_path() -> None:
    """Put back the path before raw downloads, for the ``json`` measurement."""
    from engine.jobs.ioc_scan import job
    from engine.jobs.ioc_scan.fetch import read_blob

    async def json_fetch(ctx, p, limits):
        data = await read_blob(ctx.github, p["owner"], p["name"], p["sha"])
        return job.IocScanJob._parse(ctx, p["path"], data)

    job.IocScanJob._fetch_streamed = staticmethod(json_fetch)


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


def child_parse(mode: str, path: str) -> dict:
    from engine.config import load_config
    from engine.jobs.ioc_scan.parsers import BlobLimits, parser_for

    limits = BlobLimits.from_config(load_config(None, env={}))
    parser = parser_for("package-lock.json")
    before = peak_rss_mb()
    t0 = time.perf_counter()
    if mode == "json":
        deps = parser.parse_blob("package-lock.json", Path(path).read_bytes(), limits)
    else:
        with open(path, "rb") as file:
            deps = parser.parse_file("package-lock.json", file, Path(path).stat().st_size, limits)
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
        if mode == "json":
            use_json_path()
        result = asyncio.run(child_scan(*rest)) if what == "scan" else child_parse(mode, *rest)
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
            for mode in ("json", "raw"):
                results[mode] = run_child(mode, "scan", url, str(work / f"{mode}.db"))
                results[f"{mode}_parse"] = run_child(mode, "parse", str(lockfile))
                print(mode, {k: v for k, v in results[mode].items() if k != "findings"},
                      results[f"{mode}_parse"], file=sys.stderr)
        finally:
            sim.terminate()
            sim.wait(timeout=10)
    before, after = results["json"], results["raw"]
    print(json.dumps({
        "bench": "bigfile", "lockfile_mb": size_mb,
        "scan_peak_rss_mb_json": before["peak_rss_mb"], "scan_peak_rss_mb_raw": after["peak_rss_mb"],
        "scan_rss_ratio_raw_to_json": round(after["peak_rss_mb"] / before["peak_rss_mb"], 3),
        "parse_peak_rss_mb_bytes": results["json_parse"]["peak_rss_mb"],
        "parse_peak_rss_mb_file": results["raw_parse"]["peak_rss_mb"],
        "parse_s_bytes": results["json_parse"]["wall_s"], "parse_s_file": results["raw_parse"]["wall_s"],
        "scan_s_json": before["wall_s"], "scan_s_raw": after["wall_s"],
        "same_findings": before["findings"] == after["findings"] and bool(after["findings"]),
        "findings": len(after["findings"]), "file_errors": len(after["file_errors"]) + len(before["file_errors"]),
    }))


if __name__ == "__main__":
    main()
