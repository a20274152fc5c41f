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
import io
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config import AppConfig, load_config
from engine.errors import InputError
from engine.models import RunState

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(InputError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + exits 2; we want one line, same code
        raise UsageError(f"{self.prog}: {message}")


# ---------------------------------------------------------------------------------- helpers
def _config(args: argparse.Namespace, **overrides: Any) -> AppConfig:
    flags: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    if getattr(args, "api_url", None):
        flags.setdefault("github", {})["api_url"] = args.api_url
    if getattr(args, "theme", None):
        flags.setdefault("console", {})["theme"] = args.theme
    return load_config(args.config, overrides=flags)


def _db(args: argparse.Namespace) -> Path:
    from engine.store import default_db_path

    return Path(args.db) if args.db else default_db_path()


async def _engine(args: argparse.Namespace, config: AppConfig | None = None):
    from engine.api import Engine

    return await Engine.open(_db(args), config or _config(args))


def _exit_for(state: RunState, failed: int) -> int:
    if state is RunState.PAUSED:
        return EXIT_INTERRUPTED
    if state is RunState.FAILED:
        return EXIT_INPUT if failed == 0 else EXIT_FAILED
    return EXIT_FAILED if failed else EXIT_OK


async def drive(engine: Any, run_id: int, args: argparse.Namespace, *, github: Any = None,
                services: dict | None = None, after: Callable[[], Any] | None = None) -> int:
    """Run ``run_id`` here: headless with a progress bar, or in the console."""
    handle = await engine.start(run_id, github=github, services=services)
    loop = asyncio.get_running_loop()
    stop_reason: list[str] = []

    def on_signal(name: str) -> None:
        stop_reason.append(name)
        asyncio.ensure_future(handle.runner.stop(f"stopped by {name}; resume to continue"))

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig.name)
    try:
        if getattr(args, "headless", False) or not sys.stdout.isatty():
            from engine.progress import follow

            await follow(handle.source, handle.task)
        else:
            from console.app import run_console

            await run_console(engine, source=handle.source, run_id=run_id, theme=engine.config.console.theme,
                              keymap=engine.config.console.keymap, refresh_hz=engine.config.console.refresh_hz)
            if not handle.task.done():
                await handle.stop("console closed; resume to continue")
        state = await handle.task
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    run = await engine.store.require_run(run_id)
    counts = await engine.store.counts(run_id)
    print(f"run {run_id}: {state.value}" + (f" — {run.message}" if run.message else "")
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
        table.add_row(*row)
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
            c = await engine.store.counts(r.id)
            rows.append([str(r.id), r.kind, r.state.value, _when(r.created_at), str(r.parent_id or ""),
                         f"{c.done}/{c.total}", str(c.failed), (r.message or "")[:50]])
        print(_table(rows, ["run", "kind", "state", "created", "parent", "done", "failed", "message"]), end="")
        return EXIT_OK


async def cmd_show(args: argparse.Namespace) -> int:
    async with await _engine(args) as engine:
        await engine.store.detect_interrupted()
        run = await engine.store.require_run(args.run)
        c = await engine.store.counts(run.id)
        lines = [
            f"run {run.id} ({run.kind}) — {run.state.value}" + (f": {run.message}" if run.message else ""),
            f"created {_when(run.created_at)}, started {_when(run.started_at)}, finished {_when(run.finished_at)}",
            f"items: {c.total} total, {c.done} done, {c.failed} failed, {c.skipped} skipped, {c.pending} pending, "
            f"{c.in_flight} in flight",
        ]
        if run.parent_id:
            lines.append(f"replay of run {run.parent_id}")
        lines.append("spec: " + json.dumps(run.spec))
        for cp in (await engine.store.list_checkpoints(run.id))[-3:]:
            lines.append(f"checkpoint {cp['id']} ({cp['reason']}) at {_when(cp['created_at'])}: {cp['counts']}")
        for art in await engine.store.list_artifacts(run.id):
            lines.append(f"artifact {art['id']} {art['kind']}" + (f" batch {art['batch_id']}" if art["batch_id"]
                                                                     else "") + f": {art['summary']}")
        print("\n".join(lines))
        return EXIT_OK


async def cmd_report(args: argparse.Namespace) -> int:
    async with await _engine(args) as engine:
        report = await engine.report(args.run)
        text = json.dumps(report, indent=2) if args.format == "json" else engine.report_markdown(report)
        if args.output:
            Path(args.output).write_text(text + "\n")
            print(f"report written to {args.output}", file=sys.stderr)
        else:
            print(text)
        return EXIT_OK


async def cmd_control(args: argparse.Namespace) -> int:
    async with await _engine(args) as engine:
        await engine.store.detect_interrupted()
        run = await engine.store.require_run(args.run)
        ownerless = run.state in (RunState.INTERRUPTED, RunState.FAILED, RunState.PENDING) or (
            run.state is RunState.PAUSED and not run.owner_pid)
        if args.command == "resume" and ownerless:       # no process runs it: resume it here
            return await drive(engine, run.id, args, **await _services_for(run, args, engine))
        await engine.request(run.id, args.command)
        print(f"{args.command} sent to run {run.id} (process {run.owner_pid})", file=sys.stderr)
        return EXIT_OK


async def _services_for(run: Any, args: argparse.Namespace, engine: Any) -> dict[str, Any]:
    """What a resumed or replayed run of this kind needs wired in (a GitHub client...)."""
    hook = _KIND_SERVICES.get(run.kind)
    return await hook(run, args, engine) if hook else {}


async def _ioc_scan_services(run: Any, args: argparse.Namespace, engine: Any) -> dict[str, Any]:
    from engine.github.auth import resolve_token
    from engine.jobs.ioc_scan.scan import make_client

    api_url = getattr(args, "api_url", None) or run.spec.get("api_url") or engine.config.github.api_url
    return {"github": make_client(engine, api_url, resolve_token(getattr(args, "token", None)))}


_KIND_SERVICES: dict[str, Callable[..., Any]] = {"ioc-scan": _ioc_scan_services}


async def cmd_replay(args: argparse.Namespace) -> int:
    async with await _engine(args) as engine:
        # `replay RUN --config F` (the contract's form) runs the child with F; --replay-config is the same
        source = args.replay_config or getattr(args, "config", None)
        config = load_config(source) if source else None
        child = await engine.replay(args.run, args.batch, config=config)
        print(f"run {child} created: replay of run {args.run}" + (f" batch {args.batch}" if args.batch else ""),
              file=sys.stderr)
        if args.create_only:
            print(child)
            return EXIT_OK
        run = await engine.store.require_run(child)
        return await drive(engine, child, args, **await _services_for(run, args, engine))


async def cmd_console(args: argparse.Namespace) -> int:
    from console.app import run_console

    async with await _engine(args) as engine:
        cfg = engine.config.console
        return await run_console(engine, run_id=args.run, readonly=args.readonly, theme=cfg.theme,
                                 keymap=cfg.keymap, refresh_hz=cfg.refresh_hz)


async def cmd_scan(args: argparse.Namespace, *, announce: bool = True) -> int:
    from engine.github.auth import resolve_token
    from engine.jobs.ioc_scan.output import render
    from engine.jobs.ioc_scan.scan import (
        ScanTargets,
        build_spec,
        findings,
        make_client,
        parse_failures,
        read_repos_file,
    )

    repos = list(args.repo) + (read_repos_file(args.repos_file) if args.repos_file else [])
    config = _config(args)
    spec = build_spec(ScanTargets(orgs=args.org, users=args.user, repos=repos), args.iocs,
                      include_archived=args.include_archived, include_forks=args.include_forks, match=args.match,
                      api_url=config.github.api_url)
    token = resolve_token(getattr(args, "token", None))
    async with await _engine(args, config) as engine:
        run_id = await engine.create_run("ioc-scan", spec, config)
        if announce:
            print(f"run {run_id} created: ioc-scan of {config.github.api_url}", file=sys.stderr)
        client = make_client(engine, config.github.api_url, token)
        matches: list = []

        async def emit() -> None:
            matches.extend(await findings(engine.store, run_id))
            run = await engine.store.require_run(run_id)
            text = render(matches, args.format, await parse_failures(engine.store, run_id),
                          run_info={"run_id": run_id, "state": run.state.value, "api_url": config.github.api_url})
            if args.output:
                Path(args.output).write_text(text)
                print(f"{len(matches)} findings written to {args.output} ({args.format})", file=sys.stderr)
            else:
                print(text, end="" if text.endswith("\n") else "\n")
            # a coverage gap matters as much as a finding after an incident: say what was not scanned
            failed = await engine.store.failed_items(run_id)
            if failed:
                print(f"{len(failed)} item(s) could not be scanned (`batchdeck replay {run_id}` retries them):",
                      file=sys.stderr)
                for item in failed[:10]:
                    print(f"  {item['key']}: {item['last_error']}", file=sys.stderr)
                if len(failed) > 10:
                    print(f"  ... and {len(failed) - 10} more (`batchdeck show {run_id}`)", file=sys.stderr)

        try:
            code = await drive(engine, run_id, args, github=client, after=emit)
        finally:
            await client.aclose()
        if getattr(args, "show_report", False):
            print(engine.report_markdown(await engine.report(run_id)))
        return EXIT_FAILED if matches and code == EXIT_OK else code


async def cmd_demo(args: argparse.Namespace) -> int:
    """Start the simulator in a child process (a real HTTP server on loopback), scan its org."""
    from engine.jobs.ioc_scan.scan import DEFAULT_IOCS

    sim = subprocess.Popen(  # noqa: ASYNC220 - started once, before the scan
        [sys.executable, "-m", "engine.sim.server", "--repos", str(args.repos), "--seed", str(args.seed),
         "--latency-ms", str(args.latency_ms), "--org", "acme"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        url = (sim.stdout.readline() if sim.stdout else "").strip()
        if not url.startswith("http"):
            raise InputError("the simulator did not start (run `batchdeck sim` to see why)")
        print(f"simulator: {url} (org acme, {args.repos} repositories, {args.latency_ms:g} ms latency)",
              file=sys.stderr)
        args.api_url = url
        args.org, args.user, args.repo, args.repos_file = ["acme"], [], [], None
        args.iocs = [str(DEFAULT_IOCS)]
        args.include_archived = args.include_forks = True
        args.match, args.format, args.output, args.token = "*", "table", None, "demo-token"
        args.show_report = True
        code = await cmd_scan(args)
        # findings are the point of the demo: exit 1 ("something matched") is success here
        return EXIT_OK if code == EXIT_FAILED else code
    finally:
        sim.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            sim.wait(timeout=5)


def cmd_sim(argv: list[str]) -> int:
    from engine.sim.server import main as sim_main

    return sim_main(argv)


# ---------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    def options(suppress: bool) -> argparse.ArgumentParser:
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
    parser = _Parser(prog="batchdeck", description=__doc__.split("\n\n")[0], parents=[top])
    sub = parser.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    p = sub.add_parser("run", parents=[common], help="run any job from a spec file")
    p.add_argument("job", help="job file: kind, spec, optional config")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("runs", parents=[common], help="list runs, newest first")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("show", parents=[common], help="one run: counts, checkpoints, artifacts")
    p.add_argument("run", type=int)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("report", parents=[common], help="performance report of a run")
    p.add_argument("run", type=int)
    p.add_argument("--format", choices=["md", "json"], default="md")
    p.add_argument("-o", "--output")
    p.set_defaults(func=cmd_report)

    for name, text in (("pause", "pause a running run (in-flight items finish)"),
                       ("resume", "resume a paused or interrupted run"),
                       ("cancel", "cancel a run (pending items stay pending)")):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("run", type=int)
        p.set_defaults(func=cmd_control, command=name)

    p = sub.add_parser("replay", parents=[common], help="a child run of the failed items of a run or batch")
    p.add_argument("run", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--replay-config", dest="replay_config",
                   help="configuration for the child run (the global --config does the same)")
    p.add_argument("--create-only", action="store_true", help="create the child run, do not run it")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("console", parents=[common], help="browse runs and attach to a running one")
    p.add_argument("--run", type=int, help="open this run")
    p.add_argument("--readonly", action="store_true", help="disable every action that changes a run")
    p.set_defaults(func=cmd_console)

    sub.add_parser("sim", help="the GitHub API simulator (see batchdeck sim --help)", add_help=False)

    p = sub.add_parser("scan", parents=[common], help="scan repositories for compromised package versions")
    p.add_argument("--org", action="append", default=[], help="every repository of an organisation (repeatable)")
    p.add_argument("--user", action="append", default=[], help="every repository of a user (repeatable)")
    p.add_argument("--repo", action="append", default=[], help="one repository owner/name (repeatable)")
    p.add_argument("--repos-file", help="a file of owner/name lines")
    p.add_argument("--iocs", action="append", default=[], help="IOC list: CSV, JSON, YAML or text (repeatable)")
    p.add_argument("--include-archived", action="store_true")
    p.add_argument("--include-forks", action="store_true")
    p.add_argument("--match", default="*", help="only repositories whose name matches this glob")
    p.add_argument("--format", choices=["table", "json", "sarif", "csv"], default="table")
    p.add_argument("-o", "--output", help="write the findings here instead of stdout")
    p.add_argument("--token", help="GitHub token (default: GITHUB_TOKEN, GH_TOKEN or `gh auth token`)")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("demo", parents=[common], help="simulator + IOC scan of a generated org")
    p.add_argument("--repos", type=int, default=300)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--latency-ms", type=float, default=30.0, help="simulated API latency")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "sim":
            return cmd_sim(argv[1:])
        args = build_parser().parse_args(argv)
        return asyncio.run(args.func(args))
    except InputError as exc:
        print(f"batchdeck: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("batchdeck: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
