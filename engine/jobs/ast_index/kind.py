"""ast-index, declared in one place: parse a source tree into per-file summaries, on every core or a cluster.

Everything the engine, the CLI and the console know about this kind is the
:data:`KIND` object at the end of this module (the job-kind contract,
:mod:`engine.kinds`); the parts live beside it:

* processor: :class:`~engine.jobs.ast_index.job.AstIndexJob`, a batch processor
  that sizes its own batches by parse time;
* config: the ``ast_index`` section (:mod:`~engine.jobs.ast_index.settings`);
* migrations: its three tables (:mod:`~engine.jobs.ast_index.schema`);
* services: the worker pool (:func:`worker_pool`);
* cli: ``batchdeck index`` (:mod:`~engine.jobs.ast_index.cli`), which also prints
  what ``resume`` and ``replay`` of an index run print;
* report: :func:`report_sections`; queries: the console view's reads
  (:mod:`~engine.jobs.ast_index.results`).

The worker pool is a *service* rather than something the processor builds for
itself: the engine builds it when a run starts (new, resumed, replayed, from the
CLI, the console or the Python API), from the run's configuration and the
caller's :class:`~engine.kinds.Connection`, and closes it when the run's task
ends. A processor-owned pool had no owner to close it after a ``resume`` or a
console run (its processes lived until the program exited), and the CLI had to
build one and smuggle it in. Started by the factory, the worker processes boot
while the planner walks the tree or the runner reads the store.
"""

from __future__ import annotations

from typing import Any

from engine.jobs.ast_index.cli import print_results, register
from engine.jobs.ast_index.job import NAME, POOL_SERVICE, AstIndexJob
from engine.jobs.ast_index.pool import make_pool
from engine.jobs.ast_index.results import file_detail, files_page, run_summary, symbol_lookup
from engine.jobs.ast_index.schema import MIGRATIONS
from engine.jobs.ast_index.settings import CONFIG, IndexSettings
from engine.kinds import JobKind, ReportSection, ServiceRequest, Services
from engine.safetext import visible


async def worker_pool(request: ServiceRequest) -> Services:
    """The run's worker pool. ``Connection.extra`` may name this start's ``workers`` and
    ``executor`` (the ``index`` flags, a resume on another machine); from Python the executor
    may also be a ``distributed.Client``. Otherwise the run's ``ast_index`` settings decide."""
    settings = IndexSettings.from_config(request.config)
    extra = request.connection.extra
    pool = make_pool(extra.get("executor", settings.executor), extra.get("workers") or settings.worker_count)
    try:
        await pool.start()
    except BaseException:
        await pool.close()
        raise
    return Services({POOL_SERVICE: pool})


async def report_sections(store: Any, run_id: int) -> list[ReportSection]:
    """files/s, files per language, parse errors, failed files, per-worker rates and CPU efficiency."""
    s = await run_summary(store, run_id)
    data = {k: s[k] for k in ("root", "files", "by_status", "by_language", "symbols", "files_per_s",
                              "cpu_efficiency", "workers", "batches", "errors", "failed", "not_done")}
    lines = [f"Index of `{visible(s['root'])}`: {s['files']} files, {s['symbols']} symbols; "
             f"{s['files_per_s'] or 'n/a'} files/s; CPU efficiency "
             f"{s['cpu_efficiency'] if s['cpu_efficiency'] is not None else 'n/a'} "
             "(parse time ÷ wall time × worker slots).", "",
             "| language | files |", "|---|---|"]
    lines += [f"| {visible(str(lang))} | {n} |" for lang, n in sorted(s["by_language"].items(), key=str)]
    if s["workers"]:
        lines += ["", "| worker pid | files | files/s while parsing |", "|---|---|---|"]
        lines += [f"| {w['pid']} | {w['files']} | {w['files_per_s']} |" for w in s["workers"]]
    b = s["batches"]
    if b["count"]:
        lines += ["", f"Batches: {b['count']}, {b['min']}–{b['max']} files (mean {b['mean']})."]
    if s["errors"]:
        lines += ["", f"Files with errors ({sum(v for k, v in s['by_status'].items() if k != 'ok')}, "
                  f"first {len(s['errors'])}):", ""]
        lines += [f"- `{visible(e['path'])}`{':' + str(e['line']) if e['line'] else ''}: {visible(e['error'] or '')}"
                  for e in s["errors"]]
    if s["failed"]:
        lines += ["", f"**{len(s['failed'])} file(s) NOT indexed** (`batchdeck replay {run_id}` retries them):", ""]
        lines += [f"- `{visible(f['path'])}`: {visible(f['reason'] or '')}" for f in s["failed"]]
    if s["not_done"]:
        lines += ["", f"**{s['not_done']} file(s) not parsed yet**: the index is incomplete."]
    return [ReportSection(key="ast_index", title="Source index", data=data, markdown="\n".join(lines))]


KIND = JobKind(
    name=NAME,
    processor=AstIndexJob,
    description="index a source tree (Python, JavaScript, TypeScript, Go) on every core or a Dask cluster",
    config=CONFIG,
    migrations=MIGRATIONS,
    services=worker_pool,
    cli=register,
    results=print_results,
    report=report_sections,
    queries={"summary": run_summary, "files": files_page, "file": file_detail, "symbol": symbol_lookup},
)
