"""ioc-scan's named read-only queries (``JobKind.queries``): what its results view and the
Python API read, so neither the console nor the store knows the kind's tables.

Each query is ``async def name(store, run_id, **kw)`` and returns plain rows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

FINDING_KEYS = ("id", "repo", "file_path", "line_number", "package_name", "version", "ecosystem",
                "ioc_source", "kind")


async def findings(store: Any, run_id: int, after_id: int = 0, limit: int = 200) -> list[dict[str, Any]]:
    """A page of the run's findings in id order (keyset: pass the last id seen as ``after_id``)."""
    rows = await store.fetchall(
        f"SELECT {', '.join(FINDING_KEYS)} FROM findings WHERE run_id=? AND id > ? ORDER BY id LIMIT ?",
        (run_id, after_id, limit),
    )
    return [dict(zip(FINDING_KEYS, row, strict=True)) for row in rows]


async def finding_count(store: Any, run_id: int) -> int:
    """How many findings the run has (what a view says it could not all show)."""
    row = await store.fetchone("SELECT count(*) FROM findings WHERE run_id=?", (run_id,))
    return int(row[0]) if row else 0


async def parse_failures(store: Any, run_id: int) -> list[dict[str, Any]]:
    """Files of one run that could not be parsed: repo, path, reason, line."""
    rows = await store.fetchall("SELECT repo, file_path, reason, line FROM file_errors WHERE run_id=? ORDER BY id",
                                (run_id,))
    return [{"repo": r[0], "file_path": r[1], "reason": r[2], "line": r[3]} for r in rows]


async def pending_repos(store: Any, run_id: int) -> int | None:
    """Repositories with anything left to do (their own item or one of their files)."""
    row = await store.fetchone(
        "SELECT count(DISTINCT CASE WHEN key LIKE 'file:%' THEN substr(key, 6, instr(substr(key, 6), ':') - 1) "
        "ELSE substr(key, 6) END) FROM items WHERE run_id=? AND state != 'done'", (run_id,))
    return row[0] if row else None


QUERIES: dict[str, Callable[..., Awaitable[Any]]] = {
    "findings": findings,
    "finding_count": finding_count,
    "parse_failures": parse_failures,
}
