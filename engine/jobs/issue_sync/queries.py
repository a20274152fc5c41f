"""Read-only queries over a sync run: its items with their state, its counts, its pace.

One owner for what "the state of an item" means, shared by the console view,
the report and what ``sync``/``resume``/``replay`` print. Everything returned
is data from files and the API: callers render it as plain text.
"""

from __future__ import annotations

import json
from typing import Any

ACTIONS = ("created", "updated", "unchanged", "reconciled")


async def _run_spec(store: Any, run_id: int) -> dict[str, Any]:
    run = await store.get_run(run_id)
    return run.spec if run is not None else {}


async def action_counts(store: Any, run_id: int) -> dict[str, int]:
    """created / updated / unchanged / reconciled / failed, for one run."""
    rows = await store.fetchall("SELECT action, count(*) FROM issue_sync_results WHERE run_id=? GROUP BY action",
                                (run_id,))
    counts = {a: 0 for a in ACTIONS} | dict(rows)
    failed = await store.fetchone("SELECT count(*) FROM items WHERE run_id=? AND state='failed'", (run_id,))
    counts["failed"] = failed[0] if failed else 0
    return counts


async def progress(store: Any, run_id: int) -> dict[str, Any]:
    """The last pace the run reported: writes left, write budget, expected finish, phase ({} before any)."""
    row = await store.fetchone("SELECT data FROM issue_sync_progress WHERE run_id=?", (run_id,))
    return json.loads(row[0]) if row else {}


def _item_state(row: tuple | None) -> tuple[str | None, str | None]:
    return (row[0], row[1]) if row else (None, None)


async def item_rows(store: Any, run_id: int) -> list[dict[str, Any]]:
    """One row per item of the run's planning tree, parents before their children.

    ``state``: created, updated, unchanged, reconciled (found by its marker after a
    lost answer), failed, sending (in flight), pending (queued) or waiting (for its
    parent or a dependency). ``link``: linked, checklist, pending, failed, or "" for
    an item without a parent."""
    spec = await _run_spec(store, run_id)
    nodes: list[dict[str, Any]] = spec.get("nodes", [])
    repo = spec.get("repo", "")
    mode = spec.get("links", "sub-issues")
    results = {sid: (action, number) for sid, action, number in await store.fetchall(
        "SELECT sid, action, number FROM issue_sync_results WHERE run_id=?", (run_id,))}
    known = {sid: number for sid, number in await store.fetchall(
        "SELECT sid, number FROM issue_sync_map WHERE repo=?", (repo,))}
    links = dict(await store.fetchall("SELECT child, parent FROM issue_sync_links WHERE repo=?", (repo,)))
    items = {key: (state, error) for key, state, error in await store.fetchall(
        "SELECT key, state, last_error FROM items WHERE run_id=? AND key NOT LIKE 'meta:%'", (run_id,))}
    number = {n["sid"]: (results.get(n["sid"], (None, None))[1] or known.get(n["sid"])) for n in nodes}
    rows = []
    for node in _tree_order(nodes):
        sid = node["sid"]
        item_state, error = _item_state(items.get(f"issue:{sid}"))
        if sid in results:
            state = results[sid][0]
        elif item_state == "failed":
            state = "failed"
        elif item_state == "in_flight":
            state = "sending"
        elif item_state == "pending":
            state = "pending"
        else:
            state = "waiting"
        parent = node.get("parent")
        link = ""
        if parent:
            link_key = f"checklist:{parent}" if mode == "checklist" else f"link:{sid}"
            link_state, link_error = _item_state(items.get(link_key))
            if links.get(sid) == parent:
                link = "checklist" if mode == "checklist" else "linked"
            elif link_state == "failed":
                link, error = "failed", error or link_error
            else:
                link = "pending"
        rows.append({"sid": sid, "kind": node["kind"], "title": node["title"], "path": node.get("path") or "",
                     "state": state, "number": number.get(sid), "parent": parent or "",
                     "parent_number": number.get(parent) if parent else None, "link": link,
                     "error": error or ""})
    return rows


def _tree_order(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Depth first: a PRD, then each of its epics followed by that epic's tasks."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    sids = {n["sid"] for n in nodes}
    for node in nodes:
        parent = node.get("parent")
        children.setdefault(parent if parent in sids else None, []).append(node)
    out: list[dict[str, Any]] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(children.get(node["sid"], [])))
    return out


QUERIES = {"items": item_rows, "counts": action_counts, "progress": progress}
