"""Coverage benchmark: how long the verdict of a large scan takes to compute.

Every output of a scan (and ``batchdeck findings``) computes the run family's
coverage from SQLite. Here: a 100,000-item run (20,000 repositories, 80,000
files), a tenth of the items not done, half of those failed, and a replay that
did every failed item again. Prints one JSON object:

* ``coverage_s``: seconds for :func:`engine.jobs.ioc_scan.coverage.coverage` of the family.
* ``gaps`` / ``repos_scanned``: what it found (5,000 items left, 15,000 repositories clean).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.jobs.ioc_scan.coverage import coverage  # noqa: E402
from engine.store import Store  # noqa: E402
from engine.store_rows import ITEM_INSERT_SQL  # noqa: E402

ITEMS = 100_000


async def main() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        async with await Store.open(Path(tmp) / "coverage.db") as store:
            run = await store.create_run("ioc-scan", {}, {}, planned=True)
            rows = [(run, i, f"repo:acme/r{i}" if i % 5 == 0 else f"file:acme/r{i - i % 5}:p{i}.json", "{}", 0,
                     "read") for i in range(1, ITEMS + 1)]
            await store.write_many([(ITEM_INSERT_SQL, rows)])
            await store.write("UPDATE items SET state='done' WHERE run_id=? AND seq % 10 != 0", (run,))
            await store.write("UPDATE items SET state='failed', last_error='x' WHERE run_id=? AND seq % 20 = 0",
                              (run,))
            await store.write("UPDATE runs SET state='completed' WHERE id=?", (run,))
            child = await store.create_run("ioc-scan", {}, {}, parent_id=run, planned=True)
            replayed = [(child, i, row[2], "{}", 0, "read") for i, row in enumerate(rows[19::20], 1)]
            await store.write_many([(ITEM_INSERT_SQL, replayed)])
            await store.write("UPDATE items SET state='done' WHERE run_id=?", (child,))
            start = time.perf_counter()
            cov = await coverage(store, run)
            elapsed = time.perf_counter() - start
    return {"bench": "coverage", "items": ITEMS + len(replayed), "coverage_s": round(elapsed, 3),
            "gaps": len(cov.gaps), "repos_scanned": len(cov.repos_scanned), "complete": cov.complete}


if __name__ == "__main__":
    result = asyncio.run(main())
    print(f"coverage of a {result['items']:,}-item run family: {result['coverage_s']} s")
    print(json.dumps(result))
