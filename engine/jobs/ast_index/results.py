"""Reading the index back: ``--query``, ``--format jsonl|csv`` and the run's report section.

Everything read from the tables is data from the indexed files (names, paths,
error text): the CLI renders it with :func:`engine.safetext.visible`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import orjson

from engine.errors import InputError

PAGE = 2000
FILE_COLUMNS = ("path", "language", "status", "lines", "size", "max_depth", "docstring", "counts", "error",
                "error_line", "sha")


async def latest_run(store: Any, root: str) -> tuple[int, str] | None:
    """The newest ast-index run of ``root``: (id, state)."""
    row = await store.fetchone(
        "SELECT id, state FROM runs WHERE kind='ast-index' AND json_extract(spec, '$.root')=? "
        "ORDER BY id DESC LIMIT 1", (root,))
    return (row[0], row[1]) if row else None


async def _has_tables(store: Any) -> bool:
    row = await store.fetchone("SELECT 1 FROM sqlite_master WHERE type='table' AND name='ast_files'")
    return row is not None


async def query(store: Any, root: str, name: str) -> dict[str, Any]:
    """Where ``name`` is defined, and which files import it (exactly, or a module below it)."""
    if not await _has_tables(store) or await latest_run(store, root) is None:
        raise InputError(f"{root}: not indexed yet (run `batchdeck index {root}` first)")
    definitions = [
        {"path": p, "line": line, "kind": kind, "parent": parent}
        for p, line, kind, parent in await store.fetchall(
            "SELECT path, line, kind, parent FROM ast_symbols WHERE root=? AND name=? ORDER BY path, line",
            (root, name))
    ]
    importers = [
        {"path": p, "module": module}
        for p, module in await store.fetchall(
            "SELECT path, module FROM ast_imports WHERE root=? AND (module=? OR module LIKE ? ESCAPE '\\' "
            "OR module LIKE ? ESCAPE '\\') ORDER BY path, module",
            (root, name, _like(name) + ".%", _like(name) + "/%"))
    ]
    return {"name": name, "definitions": definitions, "importers": importers}


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def file_records(store: Any, root: str) -> AsyncIterator[dict[str, Any]]:
    """Every file of the index of ``root``, keyset-paged by path, with its symbols and imports."""
    after = ""
    while True:
        rows = await store.fetchall(
            "SELECT path, language, status, lines, size, max_depth, docstring, counts, error, error_line, sha "
            "FROM ast_files WHERE root=? AND path>? ORDER BY path LIMIT ?", (root, after, PAGE))
        if not rows:
            return
        first, last = rows[0][0], rows[-1][0]
        symbols: dict[str, list] = {}
        for p, name, kind, line, parent in await store.fetchall(
                "SELECT path, name, kind, line, parent FROM ast_symbols WHERE root=? AND path BETWEEN ? AND ? "
                "ORDER BY path, line, name", (root, first, last)):
            symbols.setdefault(p, []).append({"name": name, "kind": kind, "line": line, "parent": parent})
        imports: dict[str, list] = {}
        for p, module in await store.fetchall(
                "SELECT path, module FROM ast_imports WHERE root=? AND path BETWEEN ? AND ? ORDER BY path, module",
                (root, first, last)):
            imports.setdefault(p, []).append(module)
        for row in rows:
            record = dict(zip(FILE_COLUMNS, row, strict=True))
            record["counts"] = orjson.loads(record["counts"]) if record["counts"] else {}
            record["docstring"] = None if record["docstring"] is None else bool(record["docstring"])
            record["symbols"] = symbols.get(record["path"], [])
            record["imports"] = imports.get(record["path"], [])
            yield record
        after = last


async def export(store: Any, root: str, fmt: str, out: Any) -> int:
    """Write the index as JSON lines (one file a line, symbols and imports inline) or CSV
    (one file a row; symbols and imports as counts and a ``;``-joined module list)."""
    n = 0
    writer = None
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([*FILE_COLUMNS, "symbols", "imports"])
        out.write(buffer.getvalue())
    async for record in file_records(store, root):
        n += 1
        if writer is None:
            out.write(orjson.dumps(record).decode() + "\n")
            continue
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        row = [record[c] for c in FILE_COLUMNS]
        row[FILE_COLUMNS.index("counts")] = orjson.dumps(record["counts"]).decode()
        writer.writerow([*row, len(record["symbols"]), ";".join(record["imports"])])
        out.write(buffer.getvalue())
    return n


async def report_section(store: Any, run_id: int, root: str) -> dict[str, Any]:
    """The kind's part of a run's report: files by status and language, errors, coverage."""
    by_status = dict(await store.fetchall(
        "SELECT status, count(*) FROM ast_files WHERE root=? GROUP BY status", (root,)))
    by_language = dict(await store.fetchall(
        "SELECT language, count(*) FROM ast_files WHERE root=? AND status!='error' GROUP BY language", (root,)))
    errors = [{"path": p, "status": s, "error": e, "line": line} for p, s, e, line in await store.fetchall(
        "SELECT path, status, error, error_line FROM ast_files WHERE root=? AND status!='ok' "
        "ORDER BY path LIMIT 50", (root,))]
    failed = await store.fetchall(
        "SELECT key, last_error FROM items WHERE run_id=? AND state='failed' ORDER BY id LIMIT 50", (run_id,))
    not_done = (await store.fetchone(
        "SELECT count(*) FROM items WHERE run_id=? AND state IN ('pending', 'in_flight')", (run_id,)))[0]
    symbols = (await store.fetchone("SELECT count(*) FROM ast_symbols WHERE root=?", (root,)))[0]
    flags = await store.run_flags(run_id)
    counters = (flags.get("stats") or {}).get("counters") or {}
    workers = []
    for key, files in counters.items():
        if key.startswith("worker:") and key.endswith(":files"):
            pid = key.split(":")[1]
            busy_s = counters.get(f"worker:{pid}:parse_ms", 0) / 1000
            workers.append({"pid": int(pid), "files": files,
                            "files_per_s": round(files / busy_s, 1) if busy_s else None})
    return {"counters": {k: v for k, v in counters.items() if not k.startswith("worker:")}, "workers": workers,
            "root": root, "files": sum(by_status.values()), "by_status": by_status, "by_language": by_language,
            "symbols": symbols, "errors": errors,
            "failed": [{"path": k.removeprefix("file:"), "reason": r} for k, r in failed], "not_done": not_done}
