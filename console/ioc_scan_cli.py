"""The ioc-scan side of the ``batchdeck`` command: results, verdicts, exports, tokens.

Kept apart from :mod:`console.cli` (the generic command plumbing) so that ``scan``,
``resume``, ``replay`` and ``findings`` of a scan print and export the same way:
:func:`emit_scan_results` writes the run family's findings in the chosen format,
the CSV coverage sidecar and one SARIF file per repository, then the verdict and
what was not scanned (see ``engine/jobs/ioc_scan/coverage.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.files import make_private_dir, write_private
from engine.jobs.ioc_scan.output import not_scanned_rows, render, sarif_by_repo, sarif_file_name
from engine.jobs.ioc_scan.scan import ScanResults, results
from engine.safetext import scrub_url, split_url_credentials, visible


def split_api_url(url: str) -> tuple[str, str | None]:
    """``url`` without userinfo (secret query values scrubbed too), and the secret its userinfo held."""
    clean, secret = split_url_credentials(url)
    return scrub_url(clean), secret


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


UNAUTHENTICATED_LIMIT = 60          # requests an hour: GitHub's bucket without a token
FEW_REPOS = 5                       # below this an unauthenticated scan fits in the bucket


def confirm_unauthenticated(args: argparse.Namespace, repos: int | None) -> None:
    """Before scanning without a token: warn, and unless told --yes, ask (in a terminal) or refuse.

    ``repos`` is how many repositories are known to be in scope (None: an org or user,
    not listed yet). A handful scans with a warning only. Otherwise a terminal asks
    y/N; without a terminal (CI, scripts) the scan needs --yes: a forgotten token
    secret should fail the job at once, not crawl at 60 requests an hour for a day.
    """
    size = "an unknown number of" if repos is None else str(repos)
    warning = (f"batchdeck: warning: no GitHub token (--token, GITHUB_TOKEN, GH_TOKEN or `gh auth token`): "
               f"unauthenticated, the API allows {UNAUTHENTICATED_LIMIT} requests an hour; "
               f"{size} repositories to scan")
    print(warning, file=sys.stderr)
    if (repos is not None and repos <= FEW_REPOS) or getattr(args, "yes", False):
        return
    if sys.stdin.isatty():
        answer = input("Scan unauthenticated anyway? [y/N] ")
        if answer.strip().lower() in ("y", "yes"):
            return
        raise InputError("not started: give a token (--token or GITHUB_TOKEN)")
    raise InputError("no GitHub token: give --token or GITHUB_TOKEN, or --yes to scan unauthenticated "
                     f"at {UNAUTHENTICATED_LIMIT} requests an hour")


async def scan_services(run: Any, args: argparse.Namespace, engine: Any, token: str | None) -> dict[str, Any]:
    """The client a resumed or replayed scan needs: the run's API URL unless --api-url, the token given
    or the GitHub App's installations."""
    from engine.github.app_auth import credentials_from_args
    from engine.jobs.ioc_scan.scan import make_client

    if getattr(args, "api_url", None):
        api_url = args.api_url          # already split from its credentials by _config
    else:
        api_url, _ = split_api_url(run.spec.get("api_url") or engine.config.github.api_url)
    app = credentials_from_args(args, orgs=(run.spec.get("targets") or {}).get("orgs"))
    if app is not None:   # continue as the App's installations (a wrong key: one line, exit 2)
        await app.prepare(api_url)
        return {"github": app.attach(make_client(engine, api_url, None), lambda: make_client(engine, api_url, None))}
    if token is None:
        if run.spec.get("authenticated"):
            raise InputError(f"run {run.id} was started with credentials: give --token (or set GITHUB_TOKEN), "
                             "or the --app-id flags, to continue it; nothing was changed")
        confirm_unauthenticated(args, await pending_repos(engine, run.id))
    return {"github": make_client(engine, api_url, token)}


async def pending_repos(engine: Any, run_id: int) -> int | None:
    """Repositories with anything left to do (their own item or one of their files)."""
    row = await engine.store.fetchone(
        "SELECT count(DISTINCT CASE WHEN key LIKE 'file:%' THEN substr(key, 6, instr(substr(key, 6), ':') - 1) "
        "ELSE substr(key, 6) END) FROM items WHERE run_id=? AND state != 'done'", (run_id,))
    return row[0] if row else None


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
