"""ast-index: parse a source tree into per-file summaries, on every core or on a cluster.

Everything the engine and the CLI need to know about this kind is declared
here: its name, its tables, its processor, its CLI registration
(:func:`engine.jobs.ast_index.cli.add_cli`) and its report section.

Items are files (key ``file:<relative path>``, lane ``parse``); the payload
holds what discovery saw (language, size, mtime) and the content hash of the
stored summary, if any. Every item of the ``parse`` lane reaches
:meth:`AstIndexJob.process_batch` as the engine's whole batch, which goes to
one worker process in one message and comes back in one message. Batch size is
the kind's (:class:`TimedBatchSize`): the engine asks before cutting each
batch, and the answer aims at a fixed parse time per batch.

The tables hold the latest index of each root (``root`` is the real path of
the indexed directory): a file's row is replaced when it is parsed again, and
removed when a later index of the root no longer finds it. The rows of a batch
are written through the run's one writer, in the same commit as the items'
states, so a SIGKILL loses a batch whole or not at all.

Re-runs: discovery compares size and mtime with the stored row and plans only
files that differ; a planned file whose content hash equals the stored one
keeps its summary (only its mtime is updated).

Spec::

    {"root": "/abs/dir", "exclude": ["*.min.js"], "max_size": 1048576, "order": "size",
     "workers": 8, "executor": "local" | "dask://host:port",
     "batch_seconds": 0.5, "batch_min": 50, "batch_max": 500}
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import orjson

from engine.errors import InputError
from engine.jobs.ast_index.discovery import ORDERS, compile_patterns, priority, walk
from engine.jobs.ast_index.pool import DaskPool, ProcessPool, WorkerCrashed, make_pool
from engine.models import Item, PlannedItem

KIND = "ast-index"
LANE = "parse"
POOL_SERVICE = "ast_index_pool"
DEFAULT_MAX_SIZE = 1 << 20

DDL = (
    """CREATE TABLE IF NOT EXISTS ast_files (
        root TEXT NOT NULL, path TEXT NOT NULL, dir TEXT NOT NULL, run_id INTEGER NOT NULL,
        language TEXT, size INTEGER, mtime_ns INTEGER, sha TEXT,
        status TEXT NOT NULL,              -- ok, syntax_error, error
        lines INTEGER, max_depth INTEGER, docstring INTEGER, counts TEXT,
        error TEXT, error_line INTEGER,
        PRIMARY KEY (root, path)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS ast_files_dir ON ast_files (root, dir)",
    # keyed by file first (a re-parse deletes by that prefix): one secondary index each, for --query
    """CREATE TABLE IF NOT EXISTS ast_symbols (
        root TEXT NOT NULL, path TEXT NOT NULL, line INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
        parent TEXT NOT NULL, PRIMARY KEY (root, path, line, name, kind, parent)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS ast_symbols_name ON ast_symbols (root, name)",
    """CREATE TABLE IF NOT EXISTS ast_imports (
        root TEXT NOT NULL, path TEXT NOT NULL, module TEXT NOT NULL,
        PRIMARY KEY (root, path, module)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS ast_imports_module ON ast_imports (root, module)",
)

FILE_SQL = ("INSERT OR REPLACE INTO ast_files (root, path, dir, run_id, language, size, mtime_ns, sha, status, "
            "lines, max_depth, docstring, counts, error, error_line) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
TOUCH_SQL = "UPDATE ast_files SET size=?, mtime_ns=?, run_id=? WHERE root=? AND path=?"
SYMBOL_SQL = "INSERT OR IGNORE INTO ast_symbols (root, path, name, kind, line, parent) VALUES (?,?,?,?,?,?)"
IMPORT_SQL = "INSERT OR IGNORE INTO ast_imports (root, path, module) VALUES (?,?,?)"
FORGET_SQL = (
    "DELETE FROM ast_symbols WHERE root=? AND path=?",
    "DELETE FROM ast_imports WHERE root=? AND path=?",
)
REMOVE_SQL = (*FORGET_SQL, "DELETE FROM ast_files WHERE root=? AND path=?")


async def ensure_tables(store: Any) -> None:
    """The kind's tables, created by the kind (CREATE ... IF NOT EXISTS: idempotent)."""
    for statement in DDL:
        await store.write(statement)


def build_spec(directory: str, *, exclude: list[str] | None = None, max_size: int | None = None,
               order: str = "size", workers: int | None = None, executor: str | None = None,
               batch_seconds: float = 0.5, batch_min: int = 50, batch_max: int = 500,
               test_options: dict[str, Any] | None = None) -> dict[str, Any]:
    root = os.path.realpath(directory)
    if not os.path.isdir(root):
        raise InputError(f"{directory}: not a directory")
    if order not in ORDERS:
        raise InputError(f"--order {order!r}: choose one of {', '.join(ORDERS)}")
    compile_patterns(list(exclude or []), "--exclude")
    if not 1 <= batch_min <= batch_max:
        raise InputError(f"batch sizes: need 1 <= batch_min ({batch_min}) <= batch_max ({batch_max})")
    return {"root": root, "exclude": list(exclude or []),
            "max_size": DEFAULT_MAX_SIZE if max_size is None else int(max_size), "order": order,
            "workers": workers or os.cpu_count() or 1, "executor": executor or "local",
            "batch_seconds": batch_seconds, "batch_min": batch_min, "batch_max": batch_max,
            **({"test": test_options} if test_options else {})}


class TimedBatchSize:
    """How many files the next batch carries: as many as the workers parse in
    ``target_s`` (0.2-1 s keeps per-batch overhead small and a lost batch cheap),
    judged from the parse seconds the workers report per batch (EWMA per file)."""

    def __init__(self, target_s: float, low: int, high: int) -> None:
        self.target_s, self.low, self.high = target_s, low, high
        self.per_file_s: float | None = None
        self.size = low

    def observe(self, files: int, seconds: float) -> None:
        if files <= 0:
            return
        sample = max(seconds / files, 1e-6)
        self.per_file_s = sample if self.per_file_s is None else 0.7 * self.per_file_s + 0.3 * sample
        self.size = max(self.low, min(self.high, round(self.target_s / self.per_file_s)))


class AstIndexJob:
    kind: ClassVar[str] = KIND
    batch_lanes: ClassVar[frozenset[str]] = frozenset({LANE})

    def __init__(self) -> None:
        self.pool: ProcessPool | DaskPool | None = None
        self.sizing: TimedBatchSize | None = None

    # ------------------------------------------------------------------ engine hooks
    def next_batch_size(self, engine_size: int) -> int:
        """Asked by the runner before it cuts a batch (this kind sizes by parse time)."""
        return self.sizing.size if self.sizing is not None else engine_size

    async def _ready(self, ctx: Any) -> ProcessPool | DaskPool:
        spec = ctx.spec
        if self.sizing is None:
            self.sizing = TimedBatchSize(float(spec.get("batch_seconds", 0.5)), int(spec.get("batch_min", 50)),
                                         int(spec.get("batch_max", 500)))
        if self.pool is None:
            # the CLI hands its pool in (and closes it); a resume from elsewhere builds one from the spec
            self.pool = ctx.services.get(POOL_SERVICE) or make_pool(spec.get("executor"), spec.get("workers"))
            await self.pool.start()
        return self.pool

    # ------------------------------------------------------------------ planning
    async def plan(self, spec: dict[str, Any], ctx: Any):
        root = spec["root"]
        if not os.path.isdir(root):
            raise InputError(f"{root}: not a directory (anymore)")
        await ensure_tables(ctx.store)
        await self._ready(ctx)            # workers start while the tree is walked
        exclude = compile_patterns(spec.get("exclude") or [], "--exclude")
        order = spec.get("order", "size")
        visited: set[str] = set()
        for directory in walk(root, exclude=exclude):
            visited.add(directory.path)
            ctx.count("ignored", directory.ignored)
            if directory.error is not None:
                ctx.count("unreadable_dirs")
                ctx.write(FILE_SQL, [(root, directory.path + "/", directory.path, ctx.run_id, "directory", None,
                                      None, None, "error", None, None, None, None, directory.error, None)])
                continue
            stored = {row[0]: row[1:] for row in await ctx.store.fetchall(
                "SELECT path, size, mtime_ns, sha, status FROM ast_files WHERE root=? AND dir=?",
                (root, directory.path))}
            for found in directory.files:
                ctx.count("files_found")
                before = stored.pop(found.path, None)
                if before is not None and before[0] == found.size and before[1] == found.mtime_ns:
                    ctx.count("unchanged")
                    continue
                yield PlannedItem(
                    key=f"file:{found.path}",
                    payload={"path": found.path, "language": found.language, "size": found.size,
                             "mtime_ns": found.mtime_ns, "prev_sha": before[2] if before is not None else None,
                             "known": before is not None},
                    priority=priority(found, order), lane=LANE,
                )
            gone = [(root, path) for path in stored]      # in the index, no longer on disk (or now excluded)
            for sql in REMOVE_SQL:
                if gone:
                    ctx.write(sql, gone)
            ctx.count("removed", len(gone))
        stale_dirs = [row[0] for row in await ctx.store.fetchall(
            "SELECT DISTINCT dir FROM ast_files WHERE root=?", (root,)) if row[0] not in visited]
        for stale in stale_dirs:
            paths = [(root, row[0]) for row in await ctx.store.fetchall(
                "SELECT path FROM ast_files WHERE root=? AND dir=?", (root, stale))]
            for sql in REMOVE_SQL:
                ctx.write(sql, paths)
            ctx.count("removed", len(paths))

    # ------------------------------------------------------------------ processing
    async def process(self, item: Item, ctx: Any) -> Any:
        return (await self.process_batch([item], ctx))[0]

    async def process_batch(self, items: list[Item], ctx: Any) -> list[Any]:
        pool = await self._ready(ctx)
        spec = ctx.spec
        root = spec["root"]
        options = {"max_size": spec.get("max_size", DEFAULT_MAX_SIZE), **(spec.get("test") or {})}
        request = {"files": [{"abs": os.path.join(root, it.payload["path"]), "language": it.payload["language"],
                              "prev_sha": it.payload.get("prev_sha")} for it in items],
                   "options": options}
        try:
            reply = await pool.run_batch(request)
        except WorkerCrashed as exc:
            ctx.count("batches_retried")
            ctx.count("batches_lost")
            return [exc] * len(items)
        ctx.count("batches_retried", int(reply.get("retried", False)))
        assert self.sizing is not None
        self.sizing.observe(len(items), reply["seconds"])
        ctx.count("parse_ms", round(reply["seconds"] * 1000))
        # per worker process, for files/s per worker in the report (busy time, not wall time)
        ctx.count(f"worker:{reply['pid']}:files", len(items))
        ctx.count(f"worker:{reply['pid']}:parse_ms", round(reply["seconds"] * 1000))
        self._store(ctx, root, items, reply["results"])
        return [None] * len(items)

    def _store(self, ctx: Any, root: str, items: list[Item], results: list[dict[str, Any]]) -> None:
        files, symbols, imports, forget, touched = [], [], [], [], []
        errors = syntax_errors = 0
        for item, r in zip(items, results, strict=True):
            path = item.payload["path"]
            if r["status"] == "unchanged":
                touched.append((r["size"], r["mtime_ns"], ctx.run_id, root, path))
                continue
            if item.payload.get("known"):
                forget.append((root, path))
            errors += r["status"] == "error"
            syntax_errors += r["status"] == "syntax_error"
            counts = r.get("counts")
            # a file that could not even be stat'ed keeps what discovery saw, so a re-run can skip it
            files.append((root, path, os.path.dirname(path), ctx.run_id, item.payload["language"],
                          r.get("size", item.payload.get("size")), r.get("mtime_ns", item.payload.get("mtime_ns")),
                          r.get("sha"), r["status"], r.get("lines"), r.get("max_depth"),
                          None if "docstring" not in r else int(r["docstring"]),
                          orjson.dumps(counts).decode() if counts is not None else None, r["error"],
                          r["error_line"]))
            symbols.extend((root, path, name, kind, line, parent) for name, kind, line, parent in r.get("symbols", ()))
            imports.extend((root, path, module) for module in r.get("imports", ()))
        for sql in FORGET_SQL:
            if forget:
                ctx.write(sql, forget)
        for sql, rows in ((FILE_SQL, files), (TOUCH_SQL, touched), (SYMBOL_SQL, symbols), (IMPORT_SQL, imports)):
            if rows:
                ctx.write(sql, rows)
        ctx.count("files_indexed", len(files))
        ctx.count("unchanged_content", len(touched))
        ctx.count("file_errors", errors)
        ctx.count("syntax_errors", syntax_errors)


from engine.kinds import JobKind  # noqa: E402  (the contract; helper E replaces this)

KIND = JobKind(name=KIND, processor=AstIndexJob)
