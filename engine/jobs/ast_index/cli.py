"""``batchdeck index DIR``: the kind's subcommand, registered by console/cli.py with :func:`add_cli`.

The engine may not import the console, so the console hands in what it owns:
``drive`` (run here, headless or in the console, with signal handling) and
``config`` (the global options turned into an :class:`~engine.config.AppConfig`).

An index of a directory whose latest run was interrupted (SIGKILL, Ctrl-C,
a crash) resumes that run from its last committed batch instead of starting
over; a finished one is followed by a new run that parses only what changed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from engine.errors import InputError
from engine.jobs.ast_index.discovery import ORDERS
from engine.jobs.ast_index.kind import KIND, POOL_SERVICE, build_spec, ensure_tables
from engine.jobs.ast_index.pool import make_pool
from engine.jobs.ast_index.results import export, latest_run, query, report_section
from engine.models import RunState
from engine.safetext import visible

RESUMABLE = {s.value for s in RunState if s.resumable} | {RunState.RUNNING.value}


def add_cli(subparsers: Any, *, parents: list[argparse.ArgumentParser], drive: Callable[..., Any],
            config: Callable[..., Any]) -> None:
    p = subparsers.add_parser("index", parents=parents,
                              help="index a source tree (Python, JavaScript, TypeScript, Go) on every core")
    p.add_argument("dir", help="the directory to index")
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument("--exclude", action="append", default=[], metavar="PAT",
                   help="gitignore-style pattern relative to DIR (repeatable); .gitignore files apply too")
    p.add_argument("--max-size", type=int, metavar="BYTES",
                   help="files above this size are recorded as errors, not parsed (default 1 MiB)")
    p.add_argument("--order", choices=ORDERS, default="size",
                   help="which files first: size (largest), language, mtime (newest), path")
    p.add_argument("--executor", default="local", help="local (default) or dask://HOST:PORT")
    p.add_argument("--format", choices=["jsonl", "csv"],
                   help="export the index after the run (with --query: jsonl answers one per line)")
    p.add_argument("-o", "--output", help="write the export (or query answer) here instead of stdout")
    p.add_argument("--query", metavar="NAME",
                   help="do not index: where NAME is defined and which files import it (latest index of DIR)")
    p.set_defaults(func=functools.partial(cmd_index, drive=drive, config=config))


@contextlib.contextmanager
def _output(path: str | None):
    if not path:
        yield sys.stdout
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8", newline="") as handle:
        yield handle


async def cmd_index(args: argparse.Namespace, *, drive: Callable[..., Any], config: Callable[..., Any]) -> int:
    from engine.api import Engine
    from engine.store import default_db_path

    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be at least 1, not {args.workers}")
    spec = build_spec(args.dir, exclude=args.exclude, max_size=args.max_size, order=args.order,
                      workers=args.workers, executor=args.executor)
    root = spec["root"]
    db = args.db or default_db_path()
    if args.query:
        async with await Engine.open(db) as engine:
            return await _answer_query(engine.store, root, args)
    workers = int(spec["workers"])
    # two batches per worker in flight: one parsing, one waiting in its pipe
    cfg = config(args, max_concurrent_requests=max(1, min(50, 2 * workers)), default_strategy="parallel")
    # workers start (or the cluster is reached) while the database opens: a resume answers sooner,
    # and an unreachable scheduler is a one-line error before anything is created
    pool = make_pool(spec.get("executor"), spec.get("workers"))
    try:
        await pool.start()
        print(f"parsing on {pool.description}", file=sys.stderr)
        async with await Engine.open(db, cfg) as engine:
            return await _index(engine, spec, cfg, pool, args, drive)
    finally:
        await pool.close()


async def _index(engine: Any, spec: dict[str, Any], cfg: Any, pool: Any, args: argparse.Namespace,
                 drive: Callable[..., Any]) -> int:
    root = spec["root"]
    await ensure_tables(engine.store)
    await engine.store.detect_interrupted()
    previous = await latest_run(engine.store, root)
    resumable = None
    if previous is not None and previous[1] in RESUMABLE:
        if (await engine.store.require_run(previous[0])).spec == spec:
            resumable = previous[0]
        else:
            print(f"run {previous[0]} of this directory is {previous[1]} but was started with other options: "
                  "starting a new run (files it indexed are not parsed again)", file=sys.stderr)
    if resumable is not None:
        run_id = resumable
        print(f"run {run_id} resumed: ast-index of {visible(root)} ({previous[1]} before)", file=sys.stderr)
    else:
        run_id = await engine.create_run(KIND, spec, cfg)
        print(f"run {run_id} created: ast-index of {visible(root)}", file=sys.stderr)
    code = await drive(engine, run_id, args, services={POOL_SERVICE: pool})
    section = await report_section(engine.store, run_id, root)
    _print_summary(run_id, section, pool)
    if args.format or args.output:
        with _output(args.output) as out:
            n = await export(engine.store, root, args.format or "jsonl", out)
        if args.output:
            print(f"{n} files written to {visible(args.output)} ({args.format or 'jsonl'})", file=sys.stderr)
    return code


def _print_summary(run_id: int, section: dict[str, Any], pool: Any) -> None:
    status = section["by_status"]
    languages = ", ".join(f"{visible(str(k))} {v}" for k, v in sorted(section["by_language"].items(),
                                                                       key=lambda kv: str(kv[0])))
    print(f"index of {visible(section['root'])}: {section['files']} files ({languages or 'none'}), "
          f"{section['symbols']} symbols; {status.get('syntax_error', 0)} with syntax errors, "
          f"{status.get('error', 0)} unreadable/binary/too large", file=sys.stderr)
    if section["workers"]:
        print("per worker process (files, files/s while parsing): " + ", ".join(
            f"{w['pid']}: {w['files']} at {w['files_per_s']}" for w in section["workers"]), file=sys.stderr)
    counters = section["counters"]
    skipped = counters.get("unchanged", 0) + counters.get("unchanged_content", 0)
    if skipped or counters.get("removed"):
        print(f"{skipped} unchanged file(s) skipped, {counters.get('removed', 0)} removed from the index",
              file=sys.stderr)
    if pool.restarts:
        print(f"{pool.restarts} worker process(es) died and were replaced; "
              f"{pool.retried_batches} batch(es) retried", file=sys.stderr)
    for error in section["errors"][:10]:
        where = f":{error['line']}" if error["line"] else ""
        print(f"  {visible(error['path'])}{where}: {visible(error['error'] or '')}", file=sys.stderr)
    if section["failed"]:
        print(f"{len(section['failed'])} file(s) NOT indexed (`batchdeck replay {run_id}` retries them):",
              file=sys.stderr)
        for failed in section["failed"][:10]:
            print(f"  {visible(failed['path'])}: {visible(failed['reason'] or '')}", file=sys.stderr)
    if section["not_done"]:
        print(f"{section['not_done']} file(s) not parsed yet: the index is incomplete "
              f"(`batchdeck index {visible(section['root'])}` resumes)", file=sys.stderr)


async def _answer_query(store: Any, root: str, args: argparse.Namespace) -> int:
    answer = await query(store, root, args.query)
    previous = await latest_run(store, root)
    with _output(args.output) as out:
        if args.format == "jsonl":
            import orjson

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
