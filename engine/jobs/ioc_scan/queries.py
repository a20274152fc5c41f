"""Read-only queries over ioc-scan's tables (findings, file_errors, items of a scan), taking the store."""

from __future__ import annotations

from typing import Any


async def findings(store: Any, run_id: int, after_id: int = 0, limit: int = 200) -> list[dict]:
    """A keyset page of the findings of one run (not its replays), in the order they were found."""
    rows = await store.fetchall(
        "SELECT id, repo, file_path, line_number, package_name, version, ecosystem, ioc_source, kind "
        "FROM findings WHERE run_id=? AND id > ? ORDER BY id LIMIT ?",
        (run_id, after_id, limit),
    )
    keys = ("id", "repo", "file_path", "line_number", "package_name", "version", "ecosystem", "ioc_source",
            "kind")
    return [dict(zip(keys, r, strict=True)) for r in rows]


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
