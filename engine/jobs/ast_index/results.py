"""Reading the index back: ``--query``, ``--format jsonl|csv``, the console's queries and the report.

Everything read from the tables is data from the indexed files (names, paths,
error text): the CLI renders it with :func:`engine.safetext.visible`, the
console view through its plain-text table.

The tables hold the *latest* index of each root, whichever run parsed each
file; a run's own figures (files/s, workers, failed items) come from the run.
``store`` is the engine's store (typed ``Any``: a kind does not import it).
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


async def run_root(store: Any, run_id: int) -> str:
    """The indexed directory of an ast-index run (its replays carry the same spec)."""
    run = await store.require_run(run_id)
    if "root" not in run.spec:
        raise InputError(f"run {run_id} is a {run.kind} run, not an ast-index run")
    return str(run.spec["root"])


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


async def run_summary(store: Any, run_id: int) -> dict[str, Any]:
    """A run and the index of its root: files by status and language, errors, failed items,
    files/s per worker process, batch sizes and how busy the workers were."""
    root = await run_root(store, run_id)
    state = (await store.require_run(run_id)).state
    has_tables = await _has_tables(store)
    by_status = dict(await store.fetchall(
        "SELECT status, count(*) FROM ast_files WHERE root=? GROUP BY status", (root,))) if has_tables else {}
    by_language = dict(await store.fetchall(
        "SELECT language, count(*) FROM ast_files WHERE root=? AND status!='error' GROUP BY language",
        (root,))) if has_tables else {}
    errors = [{"path": p, "status": s, "error": e, "line": line} for p, s, e, line in await store.fetchall(
        "SELECT path, status, error, error_line FROM ast_files WHERE root=? AND status!='ok' "
        "ORDER BY path LIMIT 50", (root,))] if has_tables else []
    symbols = (await store.fetchone("SELECT count(*) FROM ast_symbols WHERE root=?", (root,)))[0] \
        if has_tables else 0
    failed = await store.fetchall(
        "SELECT key, last_error FROM items WHERE run_id=? AND state='failed' ORDER BY id LIMIT 50", (run_id,))
    states = dict(await store.fetchall("SELECT state, count(*) FROM items WHERE run_id=? GROUP BY state",
                                       (run_id,)))
    batches = await store.fetchone(
        "SELECT count(*), min(size), avg(size), max(size) FROM batches WHERE run_id=?", (run_id,))
    recent_batches = [size for (size,) in await store.fetchall(
        "SELECT size FROM batches WHERE run_id=? ORDER BY id DESC LIMIT 20", (run_id,))][::-1]
    flags = await store.run_flags(run_id)
    counters = (flags.get("stats") or {}).get("counters") or {}
    active_s = float(flags.get("active_s") or 0.0)
    workers = []
    for key, files in counters.items():
        if key.startswith("worker:") and key.endswith(":files"):
            pid = key.split(":")[1]
            busy_s = counters.get(f"worker:{pid}:parse_ms", 0) / 1000
            workers.append({"pid": int(pid), "files": files,
                            "files_per_s": round(files / busy_s, 1) if busy_s else None})
    done = states.get("done", 0)
    parse_s = counters.get("parse_ms", 0) / 1000
    slots = counters.get("pool_slots", 0)
    return {
        "run_id": run_id, "state": str(state), "root": root, "files": sum(by_status.values()), "by_status": by_status,
        "by_language": by_language, "symbols": symbols, "errors": errors,
        "failed": [{"path": k.removeprefix("file:"), "reason": r} for k, r in failed],
        "not_done": states.get("pending", 0) + states.get("in_flight", 0), "done": done,
        "files_per_s": round(done / active_s, 1) if active_s else None,
        # parse seconds ÷ (wall seconds × worker slots): the share of the pool's time spent parsing
        "cpu_efficiency": round(parse_s / (active_s * slots), 3) if active_s and slots else None,
        "workers": workers,
        "batches": {"count": batches[0], "min": batches[1], "mean": round(batches[2], 1) if batches[2] else None,
                    "max": batches[3], "recent": recent_batches},
        "counters": {k: v for k, v in counters.items() if not k.startswith("worker:")},
    }


# ---------------------------------------------------------------------------- console queries
async def files_page(store: Any, run_id: int, *, after: str = "", limit: int = PAGE) -> list[dict[str, Any]]:
    """One keyset page of the index of the run's root, by path: one row per file with its
    symbol and import counts (the console's file list)."""
    root = await run_root(store, run_id)
    if not await _has_tables(store):
        return []
    rows = await store.fetchall(
        "SELECT f.path, f.language, f.status, f.lines, f.error, f.error_line, f.run_id, "
        "(SELECT count(*) FROM ast_symbols s WHERE s.root=f.root AND s.path=f.path), "
        "(SELECT count(*) FROM ast_imports i WHERE i.root=f.root AND i.path=f.path) "
        "FROM ast_files f WHERE f.root=? AND f.path>? ORDER BY f.path LIMIT ?", (root, after, limit))
    return [{"path": p, "language": lang, "status": status, "lines": lines, "error": error, "error_line": line,
             "run_id": parsed_by, "symbols": n_symbols, "imports": n_imports}
            for p, lang, status, lines, error, line, parsed_by, n_symbols, n_imports in rows]


async def file_detail(store: Any, run_id: int, *, path: str) -> dict[str, Any]:
    """One file's symbols and imports (the console's detail of the selected file)."""
    root = await run_root(store, run_id)
    symbols = [{"name": n, "kind": k, "line": line, "parent": parent} for n, k, line, parent in await store.fetchall(
        "SELECT name, kind, line, parent FROM ast_symbols WHERE root=? AND path=? ORDER BY line, name",
        (root, path))]
    imports = [m for (m,) in await store.fetchall(
        "SELECT module FROM ast_imports WHERE root=? AND path=? ORDER BY module", (root, path))]
    return {"path": path, "symbols": symbols, "imports": imports}


async def symbol_lookup(store: Any, run_id: int, *, symbol: str) -> dict[str, Any]:
    """Where ``symbol`` is defined and which files import it, in the index of the run's root."""
    return await query(store, await run_root(store, run_id), symbol)
