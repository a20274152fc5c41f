"""Runs ``batchdeck`` with a gate in the ioc-scan job, for the crash matrix.

``crash_driver.py POINT N -- ARGS...``: like ``batchdeck ARGS...``, but once the job
reaches the point (``plan``: after N items planned, before they are committed; ``process``: when the N-th
item starts) every further call there waits forever and ``HELD`` is printed on
stdout. The test then kills the process (SIGKILL) at a known point, with no race.
"""

from __future__ import annotations

import asyncio
import sys

from engine.jobs.ioc_scan.job import IocScanJob


def held() -> asyncio.Future:
    print("HELD", flush=True)
    return asyncio.get_running_loop().create_future()     # never resolved


def install(point: str, n: int) -> None:
    started = 0
    if point == "plan":
        real_plan = IocScanJob.plan

        async def plan(self, spec, ctx):
            listed = 0
            async for item in real_plan(self, spec, ctx):
                yield item
                listed += 1
                if listed == n:
                    await held()

        IocScanJob.plan = plan
        return

    real_process, real_batch = IocScanJob.process, IocScanJob.process_batch

    async def gate(count: int) -> None:
        nonlocal started
        started += count
        if started >= n:
            if started - count < n:
                print("HELD", flush=True)
            await asyncio.get_running_loop().create_future()

    async def process(self, item, ctx):
        await gate(1)
        return await real_process(self, item, ctx)

    async def process_batch(self, items, ctx):
        await gate(len(items))
        return await real_batch(self, items, ctx)

    IocScanJob.process, IocScanJob.process_batch = process, process_batch


if __name__ == "__main__":
    point, n, _, *args = sys.argv[1:]
    install(point, int(n))
    from console.cli import main

    sys.argv = ["batchdeck", *args]
    sys.exit(main(args))
