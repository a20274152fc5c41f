"""ioc-scan's commands (``scan``, ``findings``, ``demo``) and what ``scan``, ``resume``, ``replay``
and ``findings`` of a scan print: results, verdicts, exports.

Registered through the kind (``KIND.cli``, see :mod:`engine.kinds`): the console's CLI hands in
its plumbing as a :class:`~engine.kinds.CliContext`, so nothing here imports the console.
:func:`emit_scan_results` writes the run family's findings in the chosen format, the CSV
coverage sidecar and one SARIF file per repository, then the verdict and what was not scanned
(see ``engine/jobs/ioc_scan/coverage.py``).

``demo`` lives here too: it is a scan of a simulated org (the simulator is engine code); the
console it opens is opened by ``ctx.drive`` like for any foreground run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.files import make_private_dir, write_private
from engine.github.service import (
    FEW_REPOS,
    UNAUTHENTICATED_QUESTION,
    Unauthenticated,
    split_api_url,
    unauthenticated_warning,
)
from engine.jobs.ioc_scan.output import not_scanned_rows, render, sarif_by_repo, sarif_file_name
from engine.jobs.ioc_scan.scan import ScanResults, results
from engine.kinds import CliContext, ResultsRequest
from engine.safetext import visible

EXIT_OK, EXIT_FAILED = 0, 1


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse an output file we could not write before scanning, not after."""
    output = getattr(args, "output", None)
    if output:
        parent = Path(output).resolve().parent
        if not parent.is_dir() or not os.access(parent, os.W_OK) or Path(output).is_dir():
            raise InputError(f"{output}: cannot write here (no such directory, not writable, or a directory)")
    sarif_dir = getattr(args, "sarif_dir", None)
    if sarif_dir:
        existing = Path(sarif_dir).resolve()
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            raise InputError(f"{sarif_dir}: cannot create SARIF files here (not a writable directory)")


def confirm_unauthenticated(args: argparse.Namespace, repos: int | None) -> None:
    """Before scanning without a token: warn, and unless told --yes, ask (in a terminal) or refuse.

    ``repos`` is how many repositories are known to be in scope (None: an org or user,
    not listed yet). A handful scans with a warning only. Otherwise a terminal asks
    y/N; without a terminal (CI, scripts) the scan needs --yes: a forgotten token
    secret should fail the job at once, not crawl at 60 requests an hour for a day.
    """
    print(f"batchdeck: warning: {unauthenticated_warning(repos)}", file=sys.stderr)
    if (repos is not None and repos <= FEW_REPOS) or getattr(args, "yes", False):
        return
    if sys.stdin.isatty():
        answer = input(UNAUTHENTICATED_QUESTION)
        if answer.strip().lower() in ("y", "yes"):
            return
        raise InputError("not started: give a token (--token or GITHUB_TOKEN)")
    raise Unauthenticated(unauthenticated_warning(repos))


async def emit_scan_results(engine: Any, run_id: int, args: argparse.Namespace) -> ScanResults:
    """Write the findings of ``run_id``'s family (format, -o, --sarif-dir) and the verdict on stderr."""
    res = await results(engine.store, run_id)
    cov = res.coverage
    root = await engine.store.require_run(cov.run_id)
    run_info: dict[str, Any] = {"run_id": cov.run_id, "state": cov.state.value,
                                "api_url": split_api_url(root.spec.get("api_url") or "")[0]}
    if len(cov.runs) > 1:
        run_info["replays"] = cov.runs[1:]
    fmt = getattr(args, "format", None) or "table"
    text = render(res.matches, fmt, res.failures, run_info, coverage=cov, found_by=res.found_by)
    hint = f"the findings are kept in the database: `batchdeck findings {cov.run_id}`"
    try:
        if getattr(args, "output", None):
            write_private(args.output, text)
            print(f"{len(res.matches)} findings written to {args.output} ({fmt})", file=sys.stderr)
            if fmt == "csv":
                # a CSV stays a plain table for its consumers; what it covers goes beside it
                sidecar = f"{args.output}.coverage.json"
                write_private(sidecar, json.dumps({"verdict": cov.verdict(len(res.matches)),
                                                   "complete": cov.complete, "coverage": cov.to_dict()},
                                                  indent=2) + "\n")
                print(f"coverage written to {sidecar}", file=sys.stderr)
        else:
            print(text, end="" if text.endswith("\n") else "\n")
        if getattr(args, "sarif_dir", None):
            directory = make_private_dir(args.sarif_dir)
            documents = sarif_by_repo(res.matches, res.failures, run_info, coverage=cov, found_by=res.found_by)
            for repo, document in documents.items():
                target = directory / sarif_file_name(repo)
                make_private_dir(target.parent)
                write_private(target, document)
            print(f"{len(documents)} SARIF file(s), one per repository, written to {directory}", file=sys.stderr)
    except InputError as exc:
        raise InputError(f"{exc}; {hint}") from None
    if fmt == "table" and not getattr(args, "output", None):
        return res                    # the table on the terminal already ends with the verdict and gaps
    # the verdict and what was not scanned matter as much as a finding after an incident
    print(visible(cov.verdict(len(res.matches))), file=sys.stderr)
    gaps = not_scanned_rows(cov)
    if gaps:
        print("not scanned (`batchdeck resume N` continues stopped run N, `batchdeck replay N` retries its "
              "failed items):", file=sys.stderr)
        for what, why, runs in gaps[:10]:
            print(f"  {visible(what)} (run {runs}): {visible(why)}", file=sys.stderr)
        if len(gaps) > 10:
            print(f"  ... and {len(gaps) - 10} more (`batchdeck findings {cov.run_id} --format json`)",
                  file=sys.stderr)
    return res


async def scan_results(req: ResultsRequest) -> int:
    """``KIND.results``: the run family's findings, verdict and gaps; 0 only for a clean verdict
    (nothing found, everything in scope scanned), else 1."""
    res = await emit_scan_results(req.engine, req.run_id, req.args)
    return EXIT_OK if res.clean else EXIT_FAILED


# ---------------------------------------------------------------------------------- commands
def add_output_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=["table", "json", "sarif", "csv"], default="table",
                   help="findings format (default: table)")
    p.add_argument("-o", "--output", help="write the findings here (mode 0600) instead of stdout")
    p.add_argument("--sarif-dir", dest="sarif_dir",
                   help="also write one SARIF file per repository here (DIR/owner/name.sarif), for code scanning")


def register(ctx: CliContext) -> None:
    """``KIND.cli``: ``scan``, ``findings`` and ``demo``; and the findings output flags on the
    generic ``resume`` and ``replay`` (they print a scan's results like ``scan``)."""
    for name in ("resume", "replay"):
        parser = ctx.subparsers.choices.get(name)
        if parser is not None:
            add_output_flags(parser)

    p = ctx.subparsers.add_parser("findings", parents=[ctx.common],
                                  help="findings of a stored scan run and its replays")
    p.add_argument("run", type=int, help="run id (`batchdeck runs` lists them)")
    add_output_flags(p)
    p.set_defaults(func=functools.partial(cmd_findings, ctx=ctx))

    p = ctx.subparsers.add_parser("scan", parents=[ctx.common],
                                  help="scan repositories for compromised package versions")
    p.add_argument("--org", action="append", default=[], help="every repository of an organisation (repeatable)")
    p.add_argument("--user", action="append", default=[], help="every repository of a user (repeatable)")
    p.add_argument("--repo", action="append", default=[], help="one repository owner/name (repeatable)")
    p.add_argument("--repos-file", help="a file of owner/name lines")
    p.add_argument("--iocs", action="append", default=[], help="IOC list: CSV, JSON, YAML or text (repeatable)")
    p.add_argument("--include-archived", action="store_true", help="scan archived repositories too")
    p.add_argument("--include-forks", action="store_true", help="scan forked repositories too")
    p.add_argument("--match", default="*", help="only repositories whose name matches this glob")
    add_output_flags(p)
    ctx.add_connection_flags(p)
    p.set_defaults(func=functools.partial(cmd_scan, ctx=ctx))

    p = ctx.subparsers.add_parser("demo", parents=[ctx.common], help="simulator + IOC scan of a generated org")
    p.add_argument("--repos", type=int, default=300, help="repositories in the generated org (default: 300)")
    p.add_argument("--seed", type=int, default=7, help="seed of the generated org (default: 7)")
    p.add_argument("--latency-ms", type=float, default=30.0, help="simulated API latency")
    p.set_defaults(func=functools.partial(cmd_demo, ctx=ctx))


async def cmd_scan(args: argparse.Namespace, *, ctx: CliContext, announce: bool = True) -> int:
    from engine.github.app_auth import credentials_from_args
    from engine.jobs.ioc_scan.kind import NAME
    from engine.jobs.ioc_scan.scan import ScanTargets, build_spec, read_repos_file

    repos = list(args.repo) + (read_repos_file(args.repos_file) if args.repos_file else [])
    config = ctx.config(args)
    check_outputs(args)
    connection = ctx.connection(args)
    app = credentials_from_args(args)            # GitHub App installations instead of a token
    token = None if app is not None else connection.token
    if token is None and app is None:           # asked before anything is created
        confirm_unauthenticated(args, None if args.org or args.user else len(set(repos)))
    spec = build_spec(ScanTargets(orgs=args.org, users=args.user, repos=repos), args.iocs,
                      include_archived=args.include_archived, include_forks=args.include_forks, match=args.match,
                      api_url=config.github.api_url)
    # a resume without credentials must not run anonymously
    spec["authenticated"] = token is not None or app is not None
    extra = dict(connection.extra)
    if app is not None:
        await app.prepare(config.github.api_url)  # a wrong key or installation: one line, exit 2
        extra["app"] = app                         # the run's client uses these installations as prepared
    connection = dataclasses.replace(connection, api_url=config.github.api_url, token=token, assume_yes=True,
                                     extra=extra)
    async with ctx.open_engine(args, config) as engine:
        run_id = await engine.create_run(NAME, spec, config)
        if announce:
            print(f"run {run_id} created: ioc-scan of {config.github.api_url}", file=sys.stderr)
        code = await ctx.drive(engine, run_id, args, connection)
        if getattr(args, "show_report", False):
            print(engine.report_markdown(await engine.report(run_id)))
        return code


async def cmd_findings(args: argparse.Namespace, *, ctx: CliContext) -> int:
    """The findings of a stored run merged with its replays; exits like the scan would."""
    from engine.jobs.ioc_scan.kind import NAME

    async with ctx.open_engine(args, existing=True) as engine:
        await engine.store.detect_interrupted()
        run = await engine.store.require_run(args.run)
        if run.kind != NAME:
            raise InputError(f"run {run.id} is a {visible(run.kind)} run; findings come from ioc-scan runs")
        check_outputs(args)
        res = await emit_scan_results(engine, run.id, args)
        return EXIT_OK if res.clean else EXIT_FAILED


async def cmd_demo(args: argparse.Namespace, *, ctx: CliContext) -> int:
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
        args.match, args.format, args.output, args.sarif_dir, args.token = "*", "table", None, None, "demo-token"
        args.show_report = True
        code = await cmd_scan(args, ctx=ctx)
        # findings are the point of the demo: exit 1 ("something matched") is success here
        return EXIT_OK if code == EXIT_FAILED else code
    finally:
        sim.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            sim.wait(timeout=5)
