"""The ast-index processor: plans one item per source file, hands whole batches to the worker pool.

Items are files (key ``file:<relative path>``, lane ``parse``); the payload
holds what discovery saw (language, size, mtime) and the content hash of the
stored summary, if any. Every item of the ``parse`` lane reaches
:meth:`AstIndexJob.process_batch` as the engine's whole batch, which goes to
one worker process in one message and comes back in one message. The kind sizes
its own batches (:class:`~engine.processor.SizesItsBatches`): the runner asks
:meth:`AstIndexJob.next_batch_size` before cutting each batch, and the answer
aims at a fixed parse time per batch (:class:`TimedBatchSize`).

The rows of a batch are written through the run's one writer, in the same
commit as the items' states, so a SIGKILL loses a batch whole or not at all.

Re-runs: discovery compares size and mtime with the stored row and plans only
files that differ; a planned file whose content hash equals the stored one
keeps its summary (only its mtime is updated).

The spec says *what* is indexed (it decides which items a run has, so a resume
needs the same one): ``{"root": "/abs/dir", "exclude": [...], "max_size": N,
"order": "size"}``. *How* it is parsed (workers, executor, batch timing) is the
run's configuration (the ``ast_index`` section), which a resume may change.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from engine.errors import InputError
from engine.jobs.ast_index.discovery import ORDERS, compile_patterns, priority, walk
from engine.jobs.ast_index.pool import WorkerCrashed
from engine.jobs.ast_index.schema import FILE_SQL, FORGET_SQL, IMPORT_SQL, REMOVE_SQL, SYMBOL_SQL, TOUCH_SQL
from engine.jobs.ast_index.settings import DEFAULT_MAX_SIZE, IndexSettings
from engine.models import Item, PlannedItem
from engine.processor import RunContext

NAME = "ast-index"
LANE = "parse"
#: the run's worker pool (a ProcessPool or a DaskPool) in ``RunContext.services``
POOL_SERVICE = "ast_index_pool"


def build_spec(directory: str, *, exclude: list[str] | tuple[str, ...] = (), max_size: int = DEFAULT_MAX_SIZE,
               order: str = "size", test_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """What an index run covers; ``directory`` must exist (its real path is the root)."""
    root = os.path.realpath(directory)
    if not os.path.isdir(root):
        raise InputError(f"{directory}: not a directory")
    if order not in ORDERS:
        raise InputError(f"--order {order!r}: choose one of {', '.join(ORDERS)}")
    compile_patterns(list(exclude), "--exclude")
    return {"root": root, "exclude": list(exclude), "max_size": int(max_size), "order": order,
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
    """A :class:`~engine.processor.BatchProcessor` that sizes its batches (:class:`~engine.processor.SizesItsBatches`)."""

    kind: ClassVar[str] = NAME
    batch_lanes: ClassVar[frozenset[str]] = frozenset({LANE})

    def __init__(self) -> None:
        defaults = IndexSettings()
        # replaced by the run's settings when the processor first sees the run's context
        self.sizing = TimedBatchSize(defaults.batch_seconds, defaults.batch_min, defaults.batch_max)
        self._configured = False

    def next_batch_size(self, engine_size: int) -> int:
        """Asked by the runner before it cuts a batch: this kind sizes by parse time, not by the API sizer."""
        return self.sizing.size

    def _configure(self, ctx: RunContext) -> None:
        if not self._configured:
            s = IndexSettings.from_config(ctx.config)
            self.sizing = TimedBatchSize(s.batch_seconds, s.batch_min, s.batch_max)
            self._configured = True

    @staticmethod
    def _pool(ctx: RunContext) -> Any:
        pool = ctx.services.get(POOL_SERVICE)
        if pool is None:
            raise RuntimeError(f"ast-index needs the {POOL_SERVICE!r} service (built by the kind's service factory)")
        return pool

    # ------------------------------------------------------------------ planning
    async def plan(self, spec: dict[str, Any], ctx: RunContext) -> AsyncIterator[PlannedItem]:
        self._configure(ctx)
        root = spec["root"]
        if not os.path.isdir(root):
            raise InputError(f"{root}: not a directory (anymore)")
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
            ctx.count("files_found", len(directory.files))
            unchanged = 0
            for found in directory.files:
                before = stored.pop(found.path, None)
                if before is not None and before[0] == found.size and before[1] == found.mtime_ns:
                    unchanged += 1
                    continue
                yield PlannedItem(
                    key=f"file:{found.path}",
                    payload={"path": found.path, "language": found.language, "size": found.size,
                             "mtime_ns": found.mtime_ns, "prev_sha": before[2] if before is not None else None,
                             "known": before is not None},
                    priority=priority(found, order), lane=LANE,
                )
            if unchanged:
                ctx.count("unchanged", unchanged)
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
    async def process(self, item: Item, ctx: RunContext) -> Any:
        return (await self.process_batch([item], ctx))[0]

    async def process_batch(self, items: list[Item], ctx: RunContext) -> list[Any]:
        self._configure(ctx)
        pool = self._pool(ctx)
        spec = ctx.spec
        options = {"max_size": spec.get("max_size", DEFAULT_MAX_SIZE), **(spec.get("test") or {})}
        # plain tuples (this process shares the cores with the workers: little work per file here)
        files = []
        for item in items:
            p = item.payload
            files.append((p["path"], p["language"], p.get("prev_sha"), p.get("known", False), p.get("size"),
                          p.get("mtime_ns")))
        request = {"root": spec["root"], "run_id": ctx.run_id, "options": options, "files": files}
        try:
            reply = await pool.run_batch(request)
        except WorkerCrashed as exc:
            ctx.count("batches_retried")
            ctx.count("batches_lost")
            return [exc] * len(items)
        ctx.count("batches_retried", int(reply.get("retried", False)))
        ctx.counters["pool_slots"] = pool.slots      # a gauge, not a sum: batches the pool parses at once
        self.sizing.observe(len(items), reply["seconds"])
        parse_ms = round(reply["seconds"] * 1000)
        ctx.count("parse_ms", parse_ms)
        # per worker process, for files/s per worker in the report (busy time, not wall time)
        ctx.count(f"worker:{reply['pid']}:files", len(items))
        ctx.count(f"worker:{reply['pid']}:parse_ms", parse_ms)
        self._store(ctx, reply)
        return [None] * len(items)

    @staticmethod
    def _store(ctx: RunContext, reply: dict[str, Any]) -> None:
        """The worker built the rows: they go to the one writer as they are (one ``executemany``
        per statement), in the commit that also marks the batch's items done."""
        if reply["forget"]:
            for sql in FORGET_SQL:
                ctx.write(sql, reply["forget"])
        for sql, rows in ((FILE_SQL, reply["files"]), (TOUCH_SQL, reply["touched"]),
                          (SYMBOL_SQL, reply["symbols"]), (IMPORT_SQL, reply["imports"])):
            if rows:
                ctx.write(sql, rows)
        ctx.count("files_indexed", len(reply["files"]))
        ctx.count("unchanged_content", len(reply["touched"]))
        ctx.count("file_errors", reply["errors"])
        ctx.count("syntax_errors", reply["syntax_errors"])
