"""``batchdeck index DIR``: the kind's subcommand, and what a finished index run prints.

Registered through the job-kind contract (:class:`~engine.kinds.CliContext`): the
console's CLI hands in its plumbing (config from --config and flags, the engine,
``drive`` with signal handling and progress), so this module imports no console.

Flags override the ``ast_index`` configuration section (see
:mod:`~engine.jobs.ast_index.settings`). What is indexed (the directory, the
exclude patterns, the size limit, the order) is the run's spec; how (workers,
executor, batch timing) is configuration, so an interrupted run resumes with
other worker counts too.

An index of a directory whose latest run was interrupted (SIGKILL, Ctrl-C, a
crash) resumes that run from its last committed batch instead of starting
over; a finished one is followed by a new run that parses only what changed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
from typing import Any

import orjson

from engine.jobs.ast_index.discovery import ORDERS
from engine.jobs.ast_index.job import NAME, build_spec
from engine.jobs.ast_index.pool import probe_scheduler
from engine.jobs.ast_index.results import export, latest_run, query, run_summary
from engine.jobs.ast_index.settings import SECTION, IndexSettings
from engine.kinds import CliContext, Connection, ResultsRequest
from engine.models import RunState
from engine.safetext import visible

RESUMABLE = {s.value for s in RunState if s.resumable} | {RunState.RUNNING.value}
EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def register(cli: CliContext) -> None:
    p = cli.subparsers.add_parser("index", parents=[cli.common],
                                  help="index a source tree (Python, JavaScript, TypeScript, Go) on every core")
    p.add_argument("dir", help="the directory to index")
    p.add_argument("--workers", type=int,
                   help="worker processes (default: ast_index.workers; 0 or unset: one per core)")
    p.add_argument("--exclude", action="append", default=[], metavar="PAT",
                   help="gitignore-style pattern relative to DIR (repeatable; added to ast_index.exclude); "
                        ".gitignore files apply too")
    p.add_argument("--max-size", type=int, metavar="BYTES",
                   help="files above this size are recorded as errors, not parsed (default 1 MiB)")
    p.add_argument("--order", choices=ORDERS,
                   help="which files first: size (largest, default), language, mtime (newest), path")
    p.add_argument("--executor", help="local (default) or dask://HOST:PORT")
    p.add_argument("--format", choices=["jsonl", "csv"],
                   help="export the index after the run (with --query: jsonl answers one per line)")
    p.add_argument("-o", "--output", help="write the export (or query answer) here instead of stdout")
    p.add_argument("--query", metavar="NAME",
                   help="do not index: where NAME is defined and which files import it (latest index of DIR)")
    p.set_defaults(func=functools.partial(cmd_index, cli=cli))


def flag_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``index`` flags as the nested ``ast_index`` layout (unset flags left out)."""
    given = {"workers": args.workers, "executor": args.executor, "order": args.order,
             "max_file_size": args.max_size}
    return {SECTION: {k: v for k, v in given.items() if v is not None}}


@contextlib.contextmanager
def _output(path: str | None):
    if not path:
        yield sys.stdout
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8", newline="") as handle:
        yield handle


async def cmd_index(args: argparse.Namespace, *, cli: CliContext) -> int:
    settings = IndexSettings.from_config(cli.config(args, **flag_overrides(args)))
    # the configured patterns, then the flags' (each once): what is indexed, so part of the spec
    exclude = list(dict.fromkeys([*settings.exclude, *args.exclude]))
    spec = build_spec(args.dir, exclude=exclude, max_size=settings.max_size, order=settings.order)
    if args.query:
        async with cli.open_engine(args, cli.config(args, **flag_overrides(args))) as engine:
            return await _answer_query(engine.store, spec["root"], args)
    if settings.executor != "local":
        await probe_scheduler(settings.executor)
    workers = settings.worker_count
    # two batches per worker in flight: one parsing, one waiting in its pipe
    cfg = cli.config(args, **flag_overrides(args), max_concurrent_requests=max(1, min(50, 2 * workers)),
                     default_strategy="parallel")
    where = settings.executor if settings.executor != "local" else f"{workers} local worker processes"
    print(f"parsing on {visible(where)}", file=sys.stderr)
    async with cli.open_engine(args, cfg) as engine:
        run_id = await _run_for(engine, spec, cfg)
        # this start's pool: the flags and config now, also for a run created with others
        connection = Connection(extra={"workers": workers, "executor": settings.executor})
        # drives the run, then prints what KIND.results prints (print_results) and exits as it says
        code = int(await cli.drive(engine, run_id, args, connection))
        if args.format or args.output:
            with _output(args.output) as out:
                n = await export(engine.store, spec["root"], args.format or "jsonl", out)
            if args.output:
                print(f"{n} files written to {visible(args.output)} ({args.format or 'jsonl'})", file=sys.stderr)
        return code


async def _run_for(engine: Any, spec: dict[str, Any], cfg: Any) -> int:
    """The directory's unfinished run with the same spec (resumed), else a new run."""
    root = spec["root"]
    await engine.store.detect_interrupted()
    previous = await latest_run(engine.store, root)
    if previous is not None and previous[1] in RESUMABLE:
        if (await engine.store.require_run(previous[0])).spec == spec:
            print(f"run {previous[0]} resumed: ast-index of {visible(root)} ({previous[1]} before)", file=sys.stderr)
            return previous[0]
        print(f"run {previous[0]} of this directory is {previous[1]} but was started with other options: "
              "starting a new run (files it indexed are not parsed again)", file=sys.stderr)
    run_id = await engine.create_run(NAME, spec, cfg)
    print(f"run {run_id} created: ast-index of {visible(root)}", file=sys.stderr)
    return int(run_id)


async def print_results(request: ResultsRequest) -> int:
    """What ``index``, ``resume`` and ``replay`` print when an index run stops, and their exit code:
    0 when every planned file has a result (parse errors are results), 1 when files failed
    (a worker died twice on their batch) or were left unparsed by a cancel, 130 when paused
    (Ctrl-C, SIGTERM, the console quit), 2 when the run failed for a bad input."""
    store = request.engine.store
    run = await store.require_run(request.run_id)
    summary = await run_summary(store, request.run_id)
    _print_summary(summary)
    if run.state in (RunState.PAUSED, RunState.INTERRUPTED):
        return EXIT_INTERRUPTED
    if run.state is RunState.FAILED:
        return EXIT_FAILED if summary["failed"] else EXIT_INPUT
    return EXIT_FAILED if summary["failed"] or summary["not_done"] else EXIT_OK


def _print_summary(summary: dict[str, Any]) -> None:
    run_id, status = summary["run_id"], summary["by_status"]
    languages = ", ".join(f"{visible(str(k))} {v}" for k, v in sorted(summary["by_language"].items(),
                                                                       key=lambda kv: str(kv[0])))
    print(f"index of {visible(summary['root'])}: {summary['files']} files ({languages or 'none'}), "
          f"{summary['symbols']} symbols; {status.get('syntax_error', 0)} with syntax errors, "
          f"{status.get('error', 0)} unreadable/binary/too large", file=sys.stderr)
    if summary["workers"]:
        print("per worker process (files, files/s while parsing): " + ", ".join(
            f"{w['pid']}: {w['files']} at {w['files_per_s']}" for w in summary["workers"]), file=sys.stderr)
    counters = summary["counters"]
    skipped = counters.get("unchanged", 0) + counters.get("unchanged_content", 0)
    if skipped or counters.get("removed"):
        print(f"{skipped} unchanged file(s) skipped, {counters.get('removed', 0)} removed from the index",
              file=sys.stderr)
    retried, lost = counters.get("batches_retried", 0), counters.get("batches_lost", 0)
    if retried:
        print(f"{retried + lost} worker process(es) died and were replaced; {retried} batch(es) retried",
              file=sys.stderr)
    for error in summary["errors"][:10]:
        where = f":{error['line']}" if error["line"] else ""
        print(f"  {visible(error['path'])}{where}: {visible(error['error'] or '')}", file=sys.stderr)
    if summary["failed"]:
        print(f"{len(summary['failed'])} file(s) NOT indexed (`batchdeck replay {run_id}` retries them):",
              file=sys.stderr)
        for failed in summary["failed"][:10]:
            print(f"  {visible(failed['path'])}: {visible(failed['reason'] or '')}", file=sys.stderr)
    if summary["not_done"]:
        print(f"{summary['not_done']} file(s) not parsed yet: the index is incomplete "
              f"(`batchdeck index {visible(summary['root'])}` resumes)", file=sys.stderr)


async def _answer_query(store: Any, root: str, args: argparse.Namespace) -> int:
    answer = await query(store, root, args.query)
    previous = await latest_run(store, root)
    with _output(args.output) as out:
        if args.format == "jsonl":
            for d in answer["definitions"]:
                out.write(orjson.dumps({"type": "definition", "name": args.query, **d}).decode() + "\n")
            for i in answer["importers"]:
                out.write(orjson.dumps({"type": "import", **i}).decode() + "\n")
        else:
            out.write(f"{visible(args.query)} defined in {len(answer['definitions'])} place(s):\n")
            for d in answer["definitions"]:
                parent = f" in {visible(d['parent'])}" if d["parent"] else ""
                out.write(f"  {visible(d['path'])}:{d['line']}  {d['kind']}{parent}\n")
            out.write(f"imported by {len(answer['importers'])} file(s):\n")
            for i in answer["importers"]:
                out.write(f"  {visible(i['path'])}  ({visible(i['module'])})\n")
    if previous is not None and previous[1] != RunState.COMPLETED.value:
        print(f"note: the latest index run {previous[0]} of this directory is {previous[1]}: "
              "the answer covers only the files it parsed", file=sys.stderr)
    return 0 if answer["definitions"] or answer["importers"] else 1
