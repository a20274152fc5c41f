"""The ``batchdeck`` command.

Every subcommand is a small async function over :class:`engine.api.Engine`;
errors are handled in one place (:func:`main`): bad input of any kind prints
one line naming the file, key or line and exits 2, never a traceback.
Textual is imported only by the commands that open the console.

Exit codes: 0 ok; 1 findings or failed items remain; 2 bad input; 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import io
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from engine.config import AppConfig, BatchStrategy, load_config
from engine.errors import InputError
from engine.events import ControlCommand
from engine.kinds import Connection
from engine.models import RunState
from engine.safetext import safe_text, visible

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

DESCRIPTION = ("Run large, rate-limited GitHub batch jobs (an IOC scan of every repository of an org...) "
               "from a terminal console or headless; every run is kept in SQLite and can be paused, resumed, "
               "replayed and reported on.")
EPILOG = ("exit codes: 0 ok; 1 findings or failed items remain; 2 bad input; 130 interrupted. "
          "`batchdeck COMMAND --help` for one command.")


class UsageError(InputError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse prints usage + exits 2; we want one line, same code
        # main() prefixes "batchdeck: error: "; name the subcommand, not the program again
        command = self.prog.removeprefix("batchdeck").strip()
        hint = f" (see `{self.prog} --help`)"
        raise UsageError(f"{command}: {message}{hint}" if command else f"{message}{hint}")


# ---------------------------------------------------------------------------------- helpers
def _config(args: argparse.Namespace, **overrides: Any) -> AppConfig:
    flags: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    if getattr(args, "api_url", None):
        flags.setdefault("github", {})["api_url"] = args.api_url
    if getattr(args, "theme", None):
        flags.setdefault("console", {})["theme"] = args.theme
    config = load_config(args.config, overrides=flags)
    from engine.github.service import split_api_url

    clean_url, secret = split_api_url(config.github.api_url)
    if secret is not None:
        # `--api-url https://user:TOKEN@host` (or the same in the config file or environment):
        # the userinfo is the token; the URL we keep, store and show carries none
        from engine.github.auth import register_secret

        register_secret(secret)
        args.url_token = secret
        args.api_url = clean_url
        flags.setdefault("github", {})["api_url"] = clean_url
        config = load_config(args.config, overrides=flags)
    return config


def _token(args: argparse.Namespace) -> str | None:
    """--token, else the userinfo of --api-url, else GITHUB_TOKEN, GH_TOKEN, `gh auth token`."""
    from engine.github.auth import resolve_token

    return resolve_token(getattr(args, "token", None) or getattr(args, "url_token", None))


# Commands about runs already in a database: a --db (or BATCHDECK_DB) in a missing directory is a
# typo, not a place to create one (the default location is created: a new user's `runs` lists nothing)
EXISTING_DB_COMMANDS = frozenset({"runs", "show", "report", "pause", "resume", "cancel", "replay"})


def _db(args: argparse.Namespace) -> Path:
    from engine.store import default_db_path

    return Path(args.db) if args.db else default_db_path()


async def _engine(args: argparse.Namespace, config: AppConfig | None = None, *, existing: bool = False):
    from engine.api import Engine

    db = _db(args)
    chosen = getattr(args, "db", None) or os.environ.get("BATCHDECK_DB")
    existing = existing or getattr(args, "cmd", None) in EXISTING_DB_COMMANDS
    if chosen and existing and not db.parent.is_dir():
        raise InputError(f"{db}: no such directory (`{args.cmd}` works on an existing database; check --db)")
    return await Engine.open(db, config or _config(args))


@contextlib.asynccontextmanager
async def open_engine(args: argparse.Namespace, config: AppConfig | None = None, *, existing: bool = False):
    """The Engine on ``--db`` (``existing``: a command about stored runs, a missing directory is a typo)."""
    async with await _engine(args, config, existing=existing) as engine:
        yield engine


def add_connection_flags(p: argparse.ArgumentParser) -> None:
    """How a command that talks to GitHub reaches it (the global --api-url too)."""
    from engine.github.app_auth import add_app_arguments

    p.add_argument("--token", help="GitHub token (default: GITHUB_TOKEN, GH_TOKEN or `gh auth token`)")
    p.add_argument("--yes", action="store_true",
                   help="scan without a token without asking (60 requests an hour)")
    add_app_arguments(p)


def connection_of(args: argparse.Namespace) -> Connection:
    """The connection flags as a :class:`Connection` (the token resolved: --token, the userinfo of
    --api-url, GITHUB_TOKEN, GH_TOKEN, `gh auth token`)."""
    return Connection(token=_token(args), api_url=getattr(args, "api_url", None) or None,
                      app_id=getattr(args, "app_id", None), private_key_file=getattr(args, "private_key", None),
                      installation_id=getattr(args, "installation_id", None),
                      assume_yes=bool(getattr(args, "yes", False)), interactive=sys.stdin.isatty())


def _exit_for(state: RunState, failed: int) -> int:
    if state is RunState.PAUSED:
        return EXIT_INTERRUPTED
    if state is RunState.FAILED:
        return EXIT_INPUT if failed == 0 else EXIT_FAILED
    return EXIT_FAILED if failed else EXIT_OK


async def _start(engine: Any, run_id: int, connection: Connection | None, services: dict | None) -> Any:
    """``engine.start``; a run that would go unauthenticated asks first in a terminal."""
    from engine.github.service import UNAUTHENTICATED_QUESTION, Unauthenticated

    try:
        return await engine.start(run_id, connection=connection, services=services)
    except Unauthenticated as exc:
        print(f"batchdeck: warning: {exc.warning}", file=sys.stderr)
        if connection is None or not connection.interactive:
            raise
        if (await asyncio.to_thread(input, UNAUTHENTICATED_QUESTION)).strip().lower() not in ("y", "yes"):
            raise InputError("not started: give a token (--token or GITHUB_TOKEN)") from None
        return await engine.start(run_id, connection=dataclasses.replace(connection, assume_yes=True),
                                  services=services)


async def drive(engine: Any, run_id: int, args: argparse.Namespace, connection: Connection | None = None, *,
                services: dict | None = None, after: Callable[[], Any] | None = None) -> int:
    """Run ``run_id`` here: headless with a progress bar, or in the console.

    ``connection`` reaches GitHub for the kind's services; ``services`` are the caller's own
    instead (ast-index's worker pool). ``after`` runs once the run has stopped."""
    from engine.audit import Action, Origin, record

    handle = await _start(engine, run_id, connection, services)
    loop = asyncio.get_running_loop()
    stop_reason: list[str] = []
    on_stop: list[asyncio.Future] = []

    def on_signal(name: str) -> None:
        stop_reason.append(name)
        on_stop.append(asyncio.ensure_future(handle.runner.stop(f"stopped by {name}; resume to continue")))
        on_stop.append(asyncio.ensure_future(record(engine.store, run_id, Action.STOP, name, origin=Origin.SIGNAL)))

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig.name)
    try:
        if getattr(args, "headless", False) or not sys.stdout.isatty():
            from engine.progress import follow

            await follow(handle.source, handle.task)
        else:
            from console.app import run_console

            code = await run_console(engine, source=handle.source, run_id=run_id, theme=engine.config.console.theme,
                                     keymap=engine.config.console.keymap, refresh_hz=engine.config.console.refresh_hz)
            if not handle.task.done():
                await handle.stop("console closed; resume to continue")
                if code != EXIT_INTERRUPTED:     # 130: the console paused the run on quit and recorded that
                    await record(engine.store, run_id, Action.STOP, "console closed", origin=Origin.CONSOLE)
        state = await handle.task
    finally:
        if on_stop:
            await asyncio.gather(*on_stop, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    run = await engine.store.require_run(run_id)
    counts = await engine.store.counts(run_id)
    print(f"run {run_id}: {state.value}" + (f" — {visible(run.message)}" if run.message else "")
          + f" ({counts.done} done, {counts.failed} failed, {counts.pending} pending of {counts.total})",
          file=sys.stderr)
    if after is not None:
        await after()
    if state is RunState.FAILED and counts.failed == 0 and run.message:
        raise InputError(run.message)
    return _exit_for(state, counts.failed)


def _table(rows: list[list[str]], headers: list[str]) -> str:
    from rich.console import Console
    from rich.table import Table

    table = Table(*headers, box=None, pad_edge=False)
    for row in rows:
        table.add_row(*(safe_text(cell) for cell in row))    # cells are data (run messages...), never markup
    buffer = io.StringIO()
    Console(width=140, file=buffer, no_color=True).print(table)
    return buffer.getvalue()


def _when(ts: float | None) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "–"


# ---------------------------------------------------------------------------------- commands
async def cmd_run(args: argparse.Namespace) -> int:
    from engine.config import read_config_file

    path = Path(args.job)
    job = read_config_file(path)
    if not isinstance(job, dict) or "kind" not in job:
        raise InputError(f"{path}: a job file needs a 'kind' key (and usually 'spec')")
    unknown = set(job) - {"kind", "spec", "config"}
    if unknown:
        raise InputError(f"{path}: unknown key {sorted(unknown)[0]!r}; a job file has kind, spec, config")
    spec = job.get("spec") or {}
    if not isinstance(spec, dict):
        raise InputError(f"{path}: 'spec' must be a mapping")
    config = _config(args)
    if job.get("config"):
        config = load_config(args.config, overrides=job["config"])
    engine = await _engine(args, config)
    async with engine:
        run_id = await engine.create_run(str(job["kind"]), spec, config)
        print(f"run {run_id} created", file=sys.stderr)
        return await drive(engine, run_id, args)


async def cmd_runs(args: argparse.Namespace) -> int:
    async with await _engine(args) as engine:
        runs = await engine.runs(limit=args.limit)
        if args.format == "json":
            print(json.dumps([{"id": r.id, "kind": r.kind, "state": r.state.value, "created_at": r.created_at,
                               "parent": r.parent_id, "message": r.message} for r in runs], indent=2))
            return EXIT_OK
        rows = []
        for r in runs:
            c = await engine.counts(r.id)
            rows.append([str(r.id), r.kind, r.state.value, _when(r.created_at), str(r.parent_id or ""),
                         f"{c.done}/{c.total}", str(c.failed), visible(r.message or "")[:50]])
        print(_table(rows, ["run", "kind", "state", "created", "parent", "done", "failed", "message"]), end="")
        return EXIT_OK


async def cmd_show(args: argparse.Namespace) -> int:
    async with await _engine(args) as engine:
        detail = await engine.run_detail(args.run)
        run, c, checkpoints, artifacts, audit = (detail.run, detail.counts, detail.checkpoints, detail.artifacts,
                                                 detail.audit)
        if args.format == "json":
            detail_json = {"run": {**dataclasses.asdict(run), "state": run.state.value},
                           "counts": dataclasses.asdict(c), "checkpoints": checkpoints, "artifacts": artifacts,
                           "audit": [a.to_dict() for a in audit]}
            print(json.dumps(detail_json, indent=2, default=str))
            return EXIT_OK
        print("\n".join(_show_lines(run, c, checkpoints, artifacts, len(audit))))
        return EXIT_OK


def _show_lines(run: Any, c: Any, checkpoints: list[dict], artifacts: list[dict], audited: int) -> list[str]:
    """``show``'s summary: every line short, every stored string made visible (it is data)."""
    lines = [
        f"run {run.id} ({visible(run.kind)}) — {run.state.value}" + (f": {visible(run.message)}" if run.message
                                                                      else ""),
        f"created {_when(run.created_at)}, started {_when(run.started_at)}, finished {_when(run.finished_at)}",
        f"items: {c.total} total, {c.done} done, {c.failed} failed, {c.skipped} skipped, {c.pending} pending, "
        f"{c.in_flight} in flight",
    ]
    if run.parent_id:
        lines.append(f"replay of run {run.parent_id}")
    lines.append("spec:")
    lines += [f"  {visible(key)}: {_brief(value)}" for key, value in run.spec.items()]
    if checkpoints:
        last = checkpoints[-1]
        n, data = last["counts"], last["data"]
        lines.append(
            f"checkpoints: {len(checkpoints)}; the last ({visible(last['reason'])}, {_when(last['created_at'])}): "
            f"{n.get('done', 0)} of {n.get('total', 0)} done, {n.get('failed', 0)} failed, "
            f"{n.get('pending', 0)} pending"
            + (f"; concurrency {data['concurrency']}, batch size {data['batch_size']}" if "concurrency" in data
               else ""))
    if artifacts:
        kinds: dict[str, int] = {}
        for art in artifacts:
            kinds[art["kind"]] = kinds.get(art["kind"], 0) + 1
        lines.append("artifacts: " + ", ".join(f"{n} {visible(kind)}" for kind, n in kinds.items())
                     + ("; the latest:" if len(artifacts) > 5 else ":"))
        for art in artifacts[-5:]:
            batch = f" batch {art['batch_id']}" if art["batch_id"] else ""
            lines.append(f"  {art['id']} {visible(art['kind'])}{batch}: {visible(art['summary'])[:150]}")
    if audited:
        lines.append(f"audit log: {audited} operator actions (`batchdeck audit {run.id}`)")
    lines.append(f"everything, untruncated: `batchdeck show {run.id} --format json`")
    return lines


def _brief(value: Any, nested: bool = False) -> str:
    """One short line for a spec value: long lists become counts (the IOC entries are thousands)."""
    if isinstance(value, dict):
        if nested:
            return f"{len(value)} keys"
        return "; ".join(f"{visible(k)}: {_brief(v, True)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        if len(value) <= 3 and not any(isinstance(v, dict | list) for v in value):
            return ", ".join(visible(v) for v in value) or "none"
        return f"{len(value)} items"
    text = value if isinstance(value, str) else json.dumps(value)
    return visible(text)[:120]


async def cmd_report(args: argparse.Namespace) -> int:
    async with await _engine(args) as engine:
        report = await engine.report(args.run)
        text = json.dumps(report, indent=2) if args.format == "json" else engine.report_markdown(report)
        if args.output:
            from engine.files import write_private

            write_private(args.output, text + "\n")
            print(f"report written to {args.output}", file=sys.stderr)
        else:
            print(text)
        return EXIT_OK


async def cmd_control(args: argparse.Namespace) -> int:
    from engine.audit import Action, Origin, record

    command = ControlCommand(args.command)
    arg = None
    if command is ControlCommand.CONCURRENCY:
        if args.n < 1:
            raise InputError(f"concurrency: {args.n} is not a number of concurrent requests (1 or more)")
        arg = str(args.n)
    elif command is ControlCommand.STRATEGY:
        arg = args.name
    async with await _engine(args) as engine:
        await engine.store.detect_interrupted()
        run = await engine.store.require_run(args.run)
        ownerless = run.state in (RunState.INTERRUPTED, RunState.FAILED, RunState.PENDING) or (
            run.state is RunState.PAUSED and not run.owner_pid)
        if command is ControlCommand.RESUME and ownerless:       # no process runs it: resume it here
            await record(engine.store, run.id, Action.RESUME, "in this process", origin=Origin.CLI)
            return await drive_kind(engine, run.id, args)
        await engine.request(run.id, command, arg)
        await record(engine.store, run.id, Action(command.value), arg, origin=Origin.CLI)
        what = f"{command.value}{' ' + arg if arg else ''}"
        print(f"{what} sent to run {run.id} (process {run.owner_pid})" if run.owner_pid else
              f"{what} queued for run {run.id}: no process runs it now; it applies when one does", file=sys.stderr)
        return EXIT_OK


async def drive_kind(engine: Any, run_id: int, args: argparse.Namespace, connection: Connection | None = None) -> int:
    """Drive ``run_id`` (new, resumed or a replay) with its kind's services, then print what its
    kind says about it (``JobKind.results``) and exit as that says; without a results hook, the
    generic summary and exit code."""
    from engine.kinds import ResultsRequest, load_kind

    kind = load_kind((await engine.store.require_run(run_id)).kind)
    if connection is None and kind.services is not None:
        connection = connection_of(args)
    results_of = kind.results
    if results_of is None:
        return await drive(engine, run_id, args, connection)
    verdict: list[int] = []

    async def results() -> None:
        verdict.append(await results_of(ResultsRequest(engine, run_id, args)))

    code = await drive(engine, run_id, args, connection, after=results)
    if code in (EXIT_INTERRUPTED, EXIT_INPUT) or not verdict:
        return code
    return verdict[0]


async def cmd_replay(args: argparse.Namespace) -> int:
    from engine.audit import Action, Origin, record
    from engine.filters import parse_filter
    from engine.replay import replay_items, select_failed

    where = parse_filter(args.where) if args.where else None
    async with await _engine(args) as engine:
        items = await select_failed(engine.store, args.run, batch_id=args.batch, where=where)
        scope = f"batch {args.batch} of run {args.run}" if args.batch is not None else f"run {args.run}"
        if args.dry_run:
            print(f"{len(items)} failed items of {scope}" + (f" match {where.text}" if where else "")
                  + " would be replayed" + (":" if items else ""))
            for item in items[:10]:
                print(f"  {visible(item['key'])}  {visible(item['error_class'] or '–')}  "
                      f"{visible(item['last_error'] or '')[:100]}")
            if len(items) > 10:
                print(f"  ... and {len(items) - 10} more")
            return EXIT_OK
        if not items:
            matching = f" matching {where.text!r}" if where else ""
            raise InputError(f"{scope} has no failed items{matching} to replay")
        # `replay RUN --config F` (the contract's form) runs the child with F; --replay-config is the same
        source = args.replay_config or getattr(args, "config", None)
        config = load_config(source) if source else None
        child = await replay_items(engine.store, args.run, items, batch_id=args.batch, where=where, config=config)
        await record(engine.store, args.run, Action.REPLAY,
                     f"run {child}: {len(items)} items" + (f" where {where.text}" if where else ""), origin=Origin.CLI)
        print(f"run {child} created: replay of run {args.run}" + (f" batch {args.batch}" if args.batch else "")
              + (f" where {where.text}" if where else "") + f" ({len(items)} failed items)", file=sys.stderr)
        if args.create_only:
            print(child)
            return EXIT_OK
        return await drive_kind(engine, child, args)


async def cmd_audit(args: argparse.Namespace) -> int:
    from engine.audit import entries

    async with await _engine(args) as engine:
        if args.run is not None:
            await engine.store.require_run(args.run)
        found = await entries(engine.store, args.run, limit=args.limit)
        if args.format == "json":
            print(json.dumps([e.to_dict() for e in found], indent=2))
            return EXIT_OK
        if not found:
            print("no operator actions recorded" + (f" for run {args.run}" if args.run is not None else ""),
                  file=sys.stderr)
            return EXIT_OK
        rows = [[_when(e.at), str(e.run_id), e.action, e.arg or "", e.origin, e.user, f"{e.host} pid {e.pid}"]
                for e in found]
        print(_table(rows, ["when", "run", "action", "detail", "from", "user", "where"]), end="")
        return EXIT_OK


async def cmd_console(args: argparse.Namespace) -> int:
    from console.app import run_console

    async with await _engine(args) as engine:
        cfg = engine.config.console
        return await run_console(engine, run_id=args.run, readonly=args.readonly, theme=cfg.theme,
                                 keymap=cfg.keymap, refresh_hz=cfg.refresh_hz)


def cmd_sim(argv: list[str]) -> int:
    from engine.sim.server import main as sim_main

    return sim_main(argv)


# ---------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    def options(suppress: bool) -> _Parser:
        # Sub-commands re-declare the global options with SUPPRESS defaults so that
        # `batchdeck --db X runs` and `batchdeck runs --db X` both work.
        default = argparse.SUPPRESS if suppress else None
        p = _Parser(add_help=False)
        p.add_argument("--db", default=default, help="SQLite file (default: BATCHDECK_DB or the user data dir)")
        p.add_argument("--config", default=default, help="YAML or JSON configuration file")
        p.add_argument("--api-url", dest="api_url", default=default,
                       help="GitHub API base URL (GitHub Enterprise, simulator)")
        p.add_argument("--headless", action="store_true", default=argparse.SUPPRESS if suppress else False,
                       help="progress bar instead of the console")
        p.add_argument("--theme", default=default, help="console theme (dark, light, high-contrast)")
        return p

    top, common = options(False), options(True)
    parser = _Parser(prog="batchdeck", description=DESCRIPTION, epilog=EPILOG, parents=[top])
    parser.add_argument("--version", action="version", version=f"batchdeck {_version()}",
                        help="print the installed version and exit")
    sub = parser.add_subparsers(dest="cmd", required=True, parser_class=_Parser, metavar="COMMAND")
    run_help = "run id (`batchdeck runs` lists them)"

    p = sub.add_parser("run", parents=[common], help="run any job from a spec file")
    p.add_argument("job", help="job file: kind, spec, optional config")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("runs", parents=[common], help="list runs, newest first")
    p.add_argument("--format", choices=["table", "json"], default="table", help="output format (default: table)")
    p.add_argument("--limit", type=int, default=50, help="at most this many runs (default: 50)")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("show", parents=[common], help="one run: counts, spec, last checkpoint, artifacts")
    p.add_argument("run", type=int, help=run_help)
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="text: a summary (default); json: everything stored, the whole spec included")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("report", parents=[common], help="performance report of a run")
    p.add_argument("run", type=int, help=run_help)
    p.add_argument("--format", choices=["md", "json"], default="md", help="Markdown (default) or JSON")
    p.add_argument("-o", "--output", help="write the report to this file instead of stdout")
    p.set_defaults(func=cmd_report)

    for command, text in ((ControlCommand.PAUSE, "pause a running run (in-flight items finish)"),
                          (ControlCommand.RESUME, "resume a paused or interrupted run"),
                          (ControlCommand.CANCEL, "cancel a run (pending items stay pending)")):
        p = sub.add_parser(command.value, parents=[common], help=text)
        p.add_argument("run", type=int, help=run_help)
        p.set_defaults(func=cmd_control, command=command)
        if command is ControlCommand.RESUME:
            add_connection_flags(p)

    p = sub.add_parser("concurrency", parents=[common], help="change how many requests a running run makes at once")
    p.add_argument("run", type=int, help=run_help)
    p.add_argument("n", type=int, help="concurrent requests (within the configured ceiling)")
    p.set_defaults(func=cmd_control, command=ControlCommand.CONCURRENCY)

    p = sub.add_parser("strategy", parents=[common], help="switch a running run's batch sizing strategy")
    p.add_argument("run", type=int, help=run_help)
    p.add_argument("name", choices=[s.value for s in BatchStrategy], help="the strategy to switch to")
    p.set_defaults(func=cmd_control, command=ControlCommand.STRATEGY)

    p = sub.add_parser("replay", parents=[common], help="a child run of the failed items of a run or batch")
    p.add_argument("run", type=int, help=run_help)
    p.add_argument("--batch", type=int, help="only the failed items of this batch")
    p.add_argument("--where", metavar="FILTER",
                   help="only the failed items this filter matches: field=value[,field=value], fields error, "
                        "lane, key (a glob), batch, status (404, 5xx); a|b for either; "
                        "e.g. 'error=server|timeout,lane=read'")
    p.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="print how many items would be replayed, and a sample; create nothing")
    p.add_argument("--replay-config", dest="replay_config",
                   help="configuration for the child run (the global --config does the same)")
    p.add_argument("--create-only", action="store_true", help="create the child run, do not run it")
    add_connection_flags(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("audit", parents=[common],
                       help="who paused, resumed, cancelled, re-sized or replayed runs, when, from where")
    p.add_argument("run", type=int, nargs="?", help="only this run (default: every run)")
    p.add_argument("--format", choices=["table", "json"], default="table", help="output format (default: table)")
    p.add_argument("--limit", type=int, default=500, help="at most this many entries, the newest (default: 500)")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("console", parents=[common], help="browse runs and attach to a running one")
    p.add_argument("--run", type=int, help="open this run")
    p.add_argument("--readonly", action="store_true", help="disable every action that changes a run")
    p.set_defaults(func=cmd_console)

    sub.add_parser("sim", help="the GitHub API simulator (see batchdeck sim --help)", add_help=False)


    from engine.kinds import CliContext, load_kinds

    context = CliContext(subparsers=sub, common=common, add_connection_flags=add_connection_flags,
                         connection=connection_of, config=_config, open_engine=open_engine, drive=drive_kind)
    for kind in load_kinds():      # each installed kind adds its own commands, in name order
        if kind.cli is not None:
            kind.cli(context)
    return parser


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("batchdeck")
    except metadata.PackageNotFoundError:     # run from a source tree that was never installed
        return "unknown (not installed)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "sim":
            return cmd_sim(argv[1:])
        args = build_parser().parse_args(argv)
        return asyncio.run(args.func(args))
    except InputError as exc:
        print(f"batchdeck: error: {visible(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("batchdeck: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
