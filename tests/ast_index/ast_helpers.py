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
from engine.jobs.ast_index.kind import KIND  # noqa: E402
from engine.kinds import Connection  # noqa: E402

#: small batches, so a few hundred files make many batches
BATCHES = {"batch": {"min_files": 10, "max_files": 20}}


def config(**ast_index: Any):
    return load_config(None, env={}, overrides={"max_concurrent_requests": 4, "default_strategy": "parallel",
                                                "checkpoint_interval": 50, "ast_index": {**BATCHES, **ast_index}})


async def run_index(db: Path | str, spec: dict[str, Any], *, executor: Any = "local", workers: int = 2,
                    run_id: int | None = None) -> tuple[int, str]:
    """Create (or resume ``run_id``) and run to the end through the kind's contract (its
    migrations, its worker-pool service); returns (run id, final state)."""
    async with await Engine.open(db, config()) as engine:
        if run_id is None:
            run_id = await engine.create_run(KIND, spec, config())
        else:
            await engine.store.detect_interrupted()
        handle = await engine.start(run_id, connection=Connection(extra={"executor": executor, "workers": workers}))
        state = await handle.wait()
    return run_id, state.value


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
