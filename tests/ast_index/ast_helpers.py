"""Run an ast-index from a test (in this process, or as ``python ast_helpers.py DB SPEC_JSON``
for a child process a test kills), and read its tables back for comparison."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.api import Engine  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.jobs.ast_index.kind import POOL_SERVICE  # noqa: E402
from engine.jobs.ast_index.pool import make_pool  # noqa: E402


def config():
    return load_config(None, env={}, overrides={"max_concurrent_requests": 4, "default_strategy": "parallel",
                                                "checkpoint_interval": 50})


async def run_index(db: Path | str, spec: dict[str, Any], *, pool: Any = None,
                    run_id: int | None = None) -> tuple[int, str, Any]:
    """Create (or resume ``run_id``) and run to the end; returns (run id, final state, pool)."""
    pool = pool or make_pool(spec.get("executor"), spec.get("workers"))
    async with await Engine.open(db, config()) as engine:
        if run_id is None:
            run_id = await engine.create_run("ast-index", spec, config())
        else:
            await engine.store.detect_interrupted()
        try:
            handle = await engine.start(run_id, services={POOL_SERVICE: pool})
            state = await handle.wait()
        finally:
            await pool.close()
    return run_id, state.value, pool


def dump(db: Path | str, root: str) -> dict[str, list[tuple]]:
    """The index of ``root`` as sorted rows, without the run id (it differs between databases)."""
    with sqlite3.connect(db) as conn:
        return {
            "files": sorted(conn.execute(
                "SELECT path, dir, language, size, mtime_ns, sha, status, lines, max_depth, docstring, counts, "
                "error, error_line FROM ast_files WHERE root=?", (root,))),
            "symbols": sorted(conn.execute(
                "SELECT path, name, kind, line, parent FROM ast_symbols WHERE root=?", (root,))),
            "imports": sorted(conn.execute("SELECT path, module FROM ast_imports WHERE root=?", (root,))),
        }


def counters(db: Path | str, run_id: int) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        stats = conn.execute("SELECT stats FROM runs WHERE id=?", (run_id,)).fetchone()[0]
    return (json.loads(stats or "{}").get("counters") or {})


if __name__ == "__main__":
    asyncio.run(run_index(sys.argv[1], json.loads(sys.argv[2])))
