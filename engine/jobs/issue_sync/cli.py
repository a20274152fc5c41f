"""``batchdeck sync DIR --repo O/R``: the command, its dry run, write-back, export and pull.

Kept in the kind's package (registered by one call from ``console/cli.py``):
the command drives its run headless itself — the console view of a sync
comes with the job-kind contract. While the run goes, one line every few
seconds on stderr says how many writes are left, the write budget and the
expected finish at the current pace (the job's :attr:`IssueSyncJob.progress`,
also stored per run in ``issue_sync_progress``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.jobs.issue_sync.job import SyncState, load_known, wanted_items
from engine.jobs.issue_sync.kind import KIND, ensure_tables
from engine.jobs.issue_sync.pacing import Budget, finish_in
from engine.jobs.issue_sync.tree import Node, Tree, load_tree
from engine.safetext import scrub_url, split_url_credentials, visible

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
PROGRESS_EVERY_S = 5.0


def add_parser(subparsers: Any, common: Any) -> None:
    p = subparsers.add_parser("sync", parents=[common], help="push a planning tree (PRDs, epics, tasks) into "
                                                             "GitHub Issues, exactly once")
    p.add_argument("dir", help="planning tree: prds/*.md, epics/<epic>/epic.md, epics/<epic>/<n>.md "
                               "(or under .claude/)")
    p.add_argument("--repo", required=True, help="owner/name of the repository to sync into")
    p.add_argument("--dry-run", action="store_true", help="say what would be created, updated, linked and left "
                                                          "alone, and how long it takes; send nothing")
    p.add_argument("--links", choices=["sub-issues", "checklist"], default="sub-issues",
                   help="sub-issues (default) or '- [ ] #n' checklists in the parent body")
    p.add_argument("--write-back", action="store_true", help="write each issue's URL into its file's "
                                                             "frontmatter (github:); with --pull, the status")
    p.add_argument("--pull", action="store_true", help="read issue state back (closed → status: done)")
    p.add_argument("--export-sync-map", metavar="FILE", help="write the sync map as JSON")
    p.add_argument("--token", help="GitHub token (default: GITHUB_TOKEN, GH_TOKEN or `gh auth token`)")
    p.set_defaults(func=cmd_sync)


def _check_repo(repo: str) -> str:
    if not _REPO.match(repo):
        raise InputError(f"--repo {visible(repo)!r}: expected owner/name")
    return repo


def make_client(engine: Any, api_url: str, token: str | None, *, transport: Any = None) -> Any:
    from engine.github import GitHubClient

    return GitHubClient(api_url, token, config=engine.config, transport=transport)


async def resume_services(run: Any, args: argparse.Namespace, engine: Any) -> dict[str, Any]:
    from engine.github.auth import resolve_token

    api_url = getattr(args, "api_url", None) or run.spec.get("api_url") or engine.config.github.api_url
    return {"github": make_client(engine, api_url, resolve_token(getattr(args, "token", None)))}


# ---------------------------------------------------------------------------------- planning view
async def classify(store: Any, tree: Tree, repo: str, links: str) -> tuple[SyncState, dict[str, list[str]]]:
    """What a sync would do now: created / updated / unchanged / linked, by stable id."""
    await ensure_tables(store)
    st = SyncState(repo=repo, links_mode=links, nodes=tree.nodes)
    await load_known(store, st)
    wanted = wanted_items(st)
    plan: dict[str, list[str]] = {"create": [], "update": [], "unchanged": [], "link": [], "checklist": []}
    for sid in tree.nodes:
        if f"issue:{sid}" not in wanted:
            plan["unchanged"].append(sid)
        else:
            plan["update" if sid in st.known else "create"].append(sid)
    plan["link"] = [k[5:] for k in wanted if k.startswith("link:")]
    plan["checklist"] = [k[10:] for k in wanted if k.startswith("checklist:")]
    return st, plan


def _dry_run_text(tree: Tree, plan: dict[str, list[str]], budget: Budget, meta: bool) -> str:
    closed = sum(1 for s in plan["create"] if tree.nodes[s].closed)
    meta_creates = len(tree.labels) + len(tree.milestones) if meta else 0     # at most: some may exist
    creates = len(plan["create"]) + len(plan["link"]) + meta_creates
    patches = len(plan["update"]) + closed + len(plan["checklist"])
    seconds = finish_in(creates, patches, budget)
    lines = [f"dry run: nothing is sent. {len(tree.nodes)} items in {tree.root}"]
    for what, label in (("create", "create"), ("update", "update"), ("unchanged", "leave alone"),
                        ("link", "link as sub-issues"), ("checklist", "write checklists into")):
        if plan[what]:
            sample = ", ".join(visible(tree.nodes[s].path or s) for s in plan[what][:3])
            more = f" and {len(plan[what]) - 3} more" if len(plan[what]) > 3 else ""
            lines.append(f"  would {label} {len(plan[what])}: {sample}{more}")
    if meta:
        lines.append(f"  would create missing labels/milestones among: {', '.join(tree.labels + tree.milestones)}")
    lines.append(f"  {creates} content-creating requests, {patches} other mutations; at GitHub's limits "
                 f"({budget.per_minute:g}/min, {budget.per_hour}/h, one mutation a second) about "
                 f"{_duration(seconds)}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------------------- files
def _set_frontmatter(path: Path, key: str, value: str) -> None:
    """Set one frontmatter key, keeping every other line of the file as it was."""
    text = path.read_text(encoding="utf-8")
    line = f"{key}: {json.dumps(value)}" if any(c in value for c in ":#'\"") else f"{key}: {value}"
    if not text.startswith("---"):
        text = f"---\n{line}\n---\n\n{text}"
    else:
        head, sep, rest = text[3:].partition("\n---")
        lines = head.split("\n")
        for i, existing in enumerate(lines):
            if re.match(rf"{re.escape(key)}\s*:", existing):
                lines[i] = line
                break
        else:
            lines.append(line)
        text = "---" + "\n".join(lines) + sep + rest
    tmp = path.with_suffix(path.suffix + ".batchdeck-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


async def _known_rows(store: Any, repo: str) -> list[tuple]:
    return await store.fetchall(
        "SELECT sid, number, issue_id, content_hash, url, path FROM issue_sync_map WHERE repo=? "
        "AND sid NOT LIKE 'label:%' AND sid NOT LIKE 'milestone:%' ORDER BY number", (repo,))


async def write_back(store: Any, tree: Tree, repo: str) -> int:
    written = 0
    for sid, _n, _i, _h, url, _p in await _known_rows(store, repo):
        node = tree.nodes.get(sid)
        if node is None or not node.path or not url or node.github == url:
            continue
        _set_frontmatter(tree.root / node.path, "github", url)
        written += 1
    return written


async def export_sync_map(store: Any, repo: str, path: str) -> int:
    rows = await _known_rows(store, repo)
    data = {"repo": repo, "items": [{"id": sid, "number": n, "issue_id": i, "content_hash": h, "url": u, "path": p}
                                    for sid, n, i, h, u, p in rows]}
    target = Path(path)
    target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    target.chmod(0o600)
    return len(rows)


async def pull(store: Any, gh: Any, tree: Tree, repo: str, write: bool) -> list[str]:
    """Closed issues → ``status: done`` in their files (with ``write``); returns what changed."""
    by_number = {n: sid for sid, n, *_ in await _known_rows(store, repo)}
    owner, _, name = repo.partition("/")
    changes = []
    async for issue in gh.paginate(f"/repos/{owner}/{name}/issues", {"state": "all"}):
        sid = by_number.get(issue.get("number"))
        node = tree.nodes.get(sid) if sid else None
        if node is None or not node.path:
            continue
        if issue.get("state") == "closed" and not node.closed:
            changes.append(f"{node.path}: #{issue['number']} is closed → status: done")
            if write:
                _set_frontmatter(tree.root / node.path, "status", "done")
                node.status = "done"
                # the issue already says so: the next sync has nothing to send for it
                await store.write("UPDATE issue_sync_map SET content_hash=? WHERE repo=? AND sid=?",
                                  (node.content_hash(), repo, sid))
    return changes


async def results_markdown(store: Any, run_id: int) -> str:
    await ensure_tables(store)
    rows = await store.fetchall("SELECT action, count(*) FROM issue_sync_results WHERE run_id=? GROUP BY action",
                                (run_id,))
    counts = dict(rows)
    links = await store.fetchone("SELECT data FROM issue_sync_progress WHERE run_id=?", (run_id,))
    lines = ["## issue-sync", "", "| action | issues |", "|---|---|"]
    lines += [f"| {a} | {counts.get(a, 0)} |" for a in ("created", "updated", "unchanged", "reconciled")]
    if links:
        p = json.loads(links[0])
        lines += ["", f"writes left: {p['creates_left']} creates, {p['patches_left']} updates; "
                      f"budget {p['budget_per_minute']}/min, {p['budget_per_hour']}/h"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- the command
async def cmd_sync(args: argparse.Namespace) -> int:
    from engine.api import Engine
    from engine.config import load_config
    from engine.github.auth import resolve_token
    from engine.store import default_db_path

    repo = _check_repo(args.repo)
    tree = load_tree(args.dir)                   # every input error is raised here, before anything is sent
    for note in tree.notes:
        print(f"note: {visible(note)}", file=sys.stderr)
    overrides: dict[str, Any] = {}
    if getattr(args, "api_url", None):
        overrides["github"] = {"api_url": args.api_url}
    config = load_config(getattr(args, "config", None), overrides=overrides)
    url_token = None
    clean_url, secret = split_url_credentials(config.github.api_url)
    if secret is not None:
        # `--api-url https://user:TOKEN@host`: the userinfo is the token; the URL kept in the run's
        # spec and config, and shown, carries none (the secrets sweep, tests/reliability, checks it)
        from engine.github.auth import register_secret

        register_secret(secret)
        url_token = secret
        config = load_config(getattr(args, "config", None),
                             overrides={**overrides, "github": {"api_url": scrub_url(clean_url)}})
    db = Path(args.db) if getattr(args, "db", None) else default_db_path()
    async with await Engine.open(db, config) as engine:
        st, plan = await classify(engine.store, tree, repo, args.links)
        if args.dry_run:
            print(_dry_run_text(tree, plan, Budget(), not st.meta_done))
            return EXIT_OK
        token = resolve_token(getattr(args, "token", None) or url_token)
        if args.pull:
            client = make_client(engine, config.github.api_url, token)
            try:
                changes = await pull(engine.store, client, tree, repo, args.write_back)
            finally:
                await client.aclose()
            for line in changes:
                print(visible(line))
            print(f"{len(changes)} file(s) {'updated' if args.write_back else 'would change (add --write-back)'}",
                  file=sys.stderr)
            return EXIT_OK
        spec = {"repo": repo, "root": str(Path(args.dir).resolve()), "links": args.links,
                "api_url": config.github.api_url, "nodes": [n.to_dict() for n in tree.nodes.values()]}
        run_id = await engine.create_run(KIND, spec, config)
        print(f"run {run_id} created: issue-sync of {len(tree.nodes)} items into {repo}", file=sys.stderr)
        client = make_client(engine, config.github.api_url, token)
        try:
            code = await drive_sync(engine, run_id, client)
        finally:
            await client.aclose()
        await _after(engine.store, run_id, tree, repo, args)
        return code


async def drive_sync(engine: Any, run_id: int, client: Any) -> int:
    """Run the sync here, headless, with a pace line; SIGINT/SIGTERM leave it resumable."""
    from engine.models import RunState

    handle = await engine.start(run_id, github=client)
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        asyncio.ensure_future(handle.runner.stop(f"stopped by {name}; resume to continue"))

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig.name)
    printer = asyncio.create_task(_print_pace(handle))
    try:
        state = await handle.task
    finally:
        printer.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    counts = await engine.store.counts(run_id)
    run = await engine.store.require_run(run_id)
    print(f"run {run_id}: {state.value}" + (f" — {visible(run.message)}" if run.message else "")
          + f" ({counts.done} done, {counts.failed} failed, {counts.pending} pending of {counts.total})",
          file=sys.stderr)
    if state is RunState.PAUSED:
        return EXIT_INTERRUPTED
    if state is RunState.FAILED and counts.failed == 0:
        raise InputError(run.message or f"run {run_id} failed")
    return EXIT_FAILED if counts.failed or state is not RunState.COMPLETED else EXIT_OK


async def _print_pace(handle: Any) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        p = getattr(handle.runner.processor, "progress", None) or {}
        if p:
            at = time.strftime("%H:%M:%S", time.localtime(p["finish_at"]))
            print(f"sync: {p['creates_left']} creates and {p['patches_left']} updates left ({p['phase']}); "
                  f"budget {p['budget_per_minute']:g}/min ({p['used_last_minute']} used), "
                  f"{p['budget_per_hour']}/h ({p['used_last_hour']} used); finish ≈ {at} "
                  f"(in {_duration(p['finish_in_s'])})", file=sys.stderr)


async def _after(store: Any, run_id: int, tree: Tree, repo: str, args: argparse.Namespace) -> None:
    rows = await store.fetchall("SELECT action, count(*) FROM issue_sync_results WHERE run_id=? GROUP BY action",
                                (run_id,))
    counts = dict(rows)
    print("sync: " + ", ".join(f"{counts.get(a, 0)} {a}" for a in ("created", "updated", "unchanged",
                                                                   "reconciled")), file=sys.stderr)
    if args.write_back:
        print(f"{await write_back(store, tree, repo)} file(s) got their github: URL", file=sys.stderr)
    if args.export_sync_map:
        n = await export_sync_map(store, repo, args.export_sync_map)
        print(f"sync map ({n} items) written to {args.export_sync_map}", file=sys.stderr)


__all__ = ["Node", "add_parser", "cmd_sync", "resume_services"]
