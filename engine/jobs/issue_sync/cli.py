"""``batchdeck sync DIR --repo O/R``: the command, its dry run, write-back, export and pull.

Registered through the job-kind contract (:class:`~engine.kinds.CliContext`):
the run is driven by the CLI's one drive loop (signals, headless progress or
the console), with the GitHub client built by the kind's service factory. While
a headless run goes, one line every few seconds on stderr says how many writes
are left, the write budget and the expected finish at the current pace (what
the job stores per run in ``issue_sync_progress``; the console view shows the same).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.jobs.issue_sync.job import SyncState, load_known, wanted_items
from engine.jobs.issue_sync.options import LINK_MODES, SyncOptions, sync_options
from engine.jobs.issue_sync.pacing import Budget, finish_in
from engine.jobs.issue_sync.queries import progress
from engine.jobs.issue_sync.tree import Tree, load_tree
from engine.kinds import CliContext, Connection
from engine.safetext import visible

NAME = "issue-sync"
EXIT_OK = 0
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")
PROGRESS_EVERY_S = 5.0


def register(cli: CliContext) -> None:
    p = cli.subparsers.add_parser("sync", parents=[cli.common], help="push a planning tree (PRDs, epics, tasks) "
                                                                     "into GitHub Issues, exactly once")
    p.add_argument("dir", help="planning tree: prds/*.md, epics/<epic>/epic.md, epics/<epic>/<n>.md "
                               "(or under .claude/)")
    p.add_argument("--repo", required=True, help="owner/name of the repository to sync into")
    p.add_argument("--dry-run", action="store_true", help="say what would be created, updated, linked and left "
                                                          "alone, and how long it takes; send nothing")
    p.add_argument("--links", choices=LINK_MODES, default=None,
                   help="sub-issues or '- [ ] #n' checklists in the parent body "
                        "(default: issue_sync.links of the config, else sub-issues)")
    p.add_argument("--write-back", action="store_true", default=None,
                   help="write each issue's URL into its file's frontmatter (github:); with --pull, the status "
                        "(default: issue_sync.write_back of the config)")
    p.add_argument("--pull", action="store_true", help="read issue state back (closed → status: done)")
    p.add_argument("--export-sync-map", metavar="FILE", help="write the sync map as JSON")
    cli.add_connection_flags(p)
    p.set_defaults(func=functools.partial(cmd_sync, cli=cli))


def check_repo(repo: str) -> str:
    if not _REPO.match(repo):
        raise InputError(f"--repo {visible(repo)!r}: expected owner/name")
    return repo


def make_client(config: Any, connection: Connection) -> Any:
    """A GitHub client outside a run (``--pull``): the connection's URL and token, else the config's URL."""
    from engine.github import GitHubClient

    return GitHubClient(connection.api_url or config.github.api_url, connection.token, config=config)


# ---------------------------------------------------------------------------------- planning view
async def classify(store: Any, tree: Tree, repo: str, links: str) -> tuple[SyncState, dict[str, list[str]]]:
    """What a sync would do now: created / updated / unchanged / linked, by stable id."""
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
    lines.append(f"  {creates} content-creating requests, {patches} other mutations; at "
                 f"{budget.per_minute:g}/min, {budget.per_hour}/h, one mutation a second, about "
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
    shutil.copymode(path, tmp)          # the user's file keeps its mode
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


# ---------------------------------------------------------------------------------- the command
def with_labels(tree: Tree, options: SyncOptions) -> None:
    """``issue_sync.add_labels``: on every issue, after the file's own labels."""
    for node in tree.nodes.values():
        node.labels = list(dict.fromkeys([*node.labels, *options.add_labels]))


def sync_spec(tree: Tree, directory: str | Path, repo: str, links: str, api_url: str) -> dict[str, Any]:
    """What a sync run holds: the whole tree as read now, so a resume sends what was planned."""
    return {"repo": repo, "root": str(Path(directory).resolve()), "links": links, "api_url": api_url,
            "nodes": [n.to_dict() for n in tree.nodes.values()]}


async def cmd_sync(args: argparse.Namespace, cli: CliContext) -> int:
    repo = check_repo(args.repo)
    tree = load_tree(args.dir)                   # every input error is raised here, before anything is sent
    for note in tree.notes:
        print(f"note: {visible(note)}", file=sys.stderr)
    config = cli.config(args)
    options = sync_options(config)
    with_labels(tree, options)
    links = args.links or options.links
    write = options.write_back if args.write_back is None else args.write_back
    connection = cli.connection(args)
    async with cli.open_engine(args, config) as engine:
        st, plan = await classify(engine.store, tree, repo, links)
        if args.dry_run:
            budget = Budget(per_minute=options.creates_per_minute, per_hour=options.creates_per_hour)
            print(_dry_run_text(tree, plan, budget, not st.meta_done))
            return EXIT_OK
        if args.pull:
            return await _pull(engine, config, connection, tree, repo, write)
        spec = sync_spec(tree, args.dir, repo, links, connection.api_url or config.github.api_url)
        run_id = await engine.create_run(NAME, spec, config)
        print(f"run {run_id} created: issue-sync of {len(tree.nodes)} items into {repo}", file=sys.stderr)
        printer = asyncio.create_task(_print_pace(engine.store, run_id)) if _headless(args) else None
        try:
            # the drive loop prints what the kind's results hook says (results.py) and exits by it
            code = await cli.drive(engine, run_id, args, connection)
        finally:
            if printer is not None:
                printer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await printer
        if write:
            print(f"{await write_back(engine.store, tree, repo)} file(s) got their github: URL", file=sys.stderr)
        if args.export_sync_map:
            n = await export_sync_map(engine.store, repo, args.export_sync_map)
            print(f"sync map ({n} items) written to {visible(args.export_sync_map)}", file=sys.stderr)
        return code


async def _pull(engine: Any, config: Any, connection: Connection, tree: Tree, repo: str, write: bool) -> int:
    client = make_client(config, connection)
    try:
        changes = await pull(engine.store, client, tree, repo, write)
    finally:
        await client.aclose()
    for line in changes:
        print(visible(line))
    print(f"{len(changes)} file(s) {'updated' if write else 'would change (add --write-back)'}", file=sys.stderr)
    return EXIT_OK


def _headless(args: argparse.Namespace) -> bool:
    """The drive loop shows the console on a terminal (whose view shows the pace), else progress lines."""
    return bool(getattr(args, "headless", False)) or not sys.stdout.isatty()


async def _print_pace(store: Any, run_id: int) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        p = await progress(store, run_id)
        if p:
            at = time.strftime("%H:%M:%S", time.localtime(p["finish_at"]))
            print(f"sync: {p['creates_left']} creates and {p['patches_left']} updates left ({p['phase']}); "
                  f"budget {p['budget_per_minute']:g}/min ({p['used_last_minute']} used), "
                  f"{p['budget_per_hour']}/h ({p['used_last_hour']} used); finish ≈ {at} "
                  f"(in {_duration(p['finish_in_s'])})", file=sys.stderr)
