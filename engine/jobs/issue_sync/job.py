"""issue-sync: push a planning tree into GitHub Issues exactly once, within the write limits.

Items (the engine knows none of this; all go through the write lane, whose
client sends mutations one at a time, spaced for the content-creation limit):

* ``meta:labels`` — labels and milestones the tree names that the repo lacks;
* ``issue:<sid>`` — create (POST) or update (PATCH) one issue;
* ``link:<sid>`` — make the issue a sub-issue of its parent (by the child's id);
* ``checklist:<sid>`` — ``--links checklist``: write ``- [ ] #n`` lines of the
  children into the parent's body instead.

**Task graph by spawning.** An item is due when what it needs exists: an issue
after its parent and the issues it depends on (their numbers go in its body),
a link after both ends. Items whose needs are met at plan time are planned;
the others are spawned by the item that met their last need. The readiness
state is rebuilt from the spec and the sync tables whenever a process starts
(a resume does not plan again), and an item already in the run's items table
is never spawned twice.

**Exactly once.** Before a create is sent, an intent row is committed (its own
transaction: at most 80 a minute, and it must be durable before the POST).
Every body carries ``<!-- batchdeck:id=<sid> -->``. The result (sync-map row)
is written in the same commit as the item's state. An item that finds an
intent without a map row — the process died mid-create, or the answer was
lost to a timeout, a reset or a 5xx after the server acted — looks the marker
up (search, then the newest issues, since search is indexed with a delay)
before it creates anything.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote

from engine.errors import ClientError, InputError, RateLimitError
from engine.jobs.issue_sync.options import SyncOptions, sync_options
from engine.jobs.issue_sync.pacing import Budget, finish_in
from engine.jobs.issue_sync.schema import (
    FORGET_INTENT_SQL,
    INTENT_SQL,
    LINK_SQL,
    MAP_SQL,
    PROGRESS_SQL,
    RESULT_SQL,
)
from engine.jobs.issue_sync.tree import Node
from engine.models import Item, PlannedItem

MARKER = "<!-- batchdeck:id={} -->"
MARKER_RE = re.compile(r"<!-- batchdeck:id=(\S+) -->")
META = "meta:labels"
PRIORITY = {"meta": 0, "prd": 1, "epic": 2, "part": 3, "task": 4, "link": 5, "checklist": 6}
PROGRESS_EVERY_S = 0.5    # the pace estimate is refreshed at most this often
LABEL_COLORS = {"prd": "5319e7", "epic": "3e4b9e", "task": "c5def5"}



def marker_of(body: str | None) -> str | None:
    found = MARKER_RE.search(body or "")
    return found.group(1) if found else None


@dataclass
class Known:
    number: int
    issue_id: int
    content_hash: str
    url: str | None = None


@dataclass
class SyncState:
    """Everything the job knows about one repo's sync; rebuilt from spec + tables on (re)start."""

    repo: str
    links_mode: str
    nodes: dict[str, Node]
    known: dict[str, Known] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    meta_done: bool = False
    milestones: dict[str, int] = field(default_factory=dict)
    needs: dict[str, set[str]] = field(default_factory=dict)          # item key → sids still missing
    waiting_on: dict[str, list[str]] = field(default_factory=dict)    # sid → item keys that need it
    in_run: set[str] = field(default_factory=set)                     # item keys already in the run
    creates_left: int = 0
    patches_left: int = 0
    sent: deque[float] = field(default_factory=deque)

    @property
    def owner_name(self) -> tuple[str, str]:
        owner, _, name = self.repo.partition("/")
        return owner, name

    def children(self, sid: str) -> list[str]:
        return [n.sid for n in self.nodes.values() if n.parent == sid]


def wanted_items(st: SyncState) -> dict[str, set[str]]:
    """Item key → the sids it needs (``META`` counts as one), for everything still to do."""
    out: dict[str, set[str]] = {}
    meta_needed = not st.meta_done
    if meta_needed:
        out[META] = set()
    for node in st.nodes.values():
        known = st.known.get(node.sid)
        if known is None or known.content_hash != node.content_hash():
            needs = set(node.depends_on) | ({node.parent} if node.parent else set())
            if meta_needed:
                needs.add(META)
            out[f"issue:{node.sid}"] = needs
    for node in st.nodes.values():
        if node.parent and st.links.get(node.sid) != node.parent:
            if st.links_mode == "checklist":
                out[f"checklist:{node.parent}"] = {node.parent, *st.children(node.parent)}
            else:
                out[f"link:{node.sid}"] = {node.sid, node.parent}
    for key, needs in out.items():
        if key.startswith("issue:"):
            continue
        # a link waits for its ends to be (re)written in this run, not just to exist
        needs.update(f"@{s}" for s in list(needs) if f"issue:{s}" in out)
    return out


class IssueSyncJob:
    kind: ClassVar[str] = "issue-sync"

    def __init__(self) -> None:
        self._state: SyncState | None = None
        self._loading = asyncio.Lock()
        self.progress: dict[str, Any] = {}
        self._progress_at = 0.0
        self._options: SyncOptions | None = None

    # ------------------------------------------------------------------ state
    async def _load(self, ctx: Any, *, planning: bool = False) -> SyncState:
        async with self._loading:
            if self._state is not None:
                return self._state
            spec = ctx.spec
            self._options = options = sync_options(ctx.config)
            if options.paced_below_github and hasattr(ctx.github, "limit_content_creation"):
                ctx.github.limit_content_creation(options.creates_per_minute, options.creates_per_hour)
            nodes = {d["sid"]: Node.from_dict(d) for d in spec["nodes"]}
            st = SyncState(repo=spec["repo"], links_mode=spec.get("links", "sub-issues"), nodes=nodes)
            await load_known(ctx.store, st)
            rows = await ctx.store.fetchall("SELECT key FROM items WHERE run_id=?", (ctx.run_id,))
            st.in_run = {r[0] for r in rows}
            wanted = wanted_items(st)
            st.needs = {}
            for key, needs in wanted.items():
                missing = {s for s in needs if not self._has(st, s)}
                st.needs[key] = missing
                for sid in missing:
                    st.waiting_on.setdefault(sid, []).append(key)
            self._count_left(st, wanted)
            self._state = st
            if not planning:
                # a resume: anything due but not in the run yet (its spawn was lost) is added now
                for key, missing in st.needs.items():
                    if not missing and key not in st.in_run:
                        self._spawn(ctx, st, key)
            return st

    @staticmethod
    def _has(st: SyncState, sid: str) -> bool:
        if sid == META:
            return st.meta_done
        if sid.startswith("@"):
            return False
        return sid in st.known

    @staticmethod
    def _count_left(st: SyncState, wanted: dict[str, set[str]]) -> None:
        creates = patches = 0
        for key in wanted:
            kind, _, sid = key.partition(":")
            if kind == "issue":
                node = st.nodes[sid]
                if sid in st.known:
                    patches += 1
                else:
                    creates += 1
                    patches += node.closed
            elif kind == "link":
                creates += 1
            elif kind == "checklist":
                patches += 1
            else:       # labels and milestones (at most: some may exist already)
                creates += len({x for n in st.nodes.values() for x in n.labels}) + len(
                    {n.milestone for n in st.nodes.values() if n.milestone})
        st.creates_left, st.patches_left = creates, patches

    def _item(self, st: SyncState, key: str) -> PlannedItem:
        kind, _, sid = key.partition(":")
        priority = PRIORITY[st.nodes[sid].kind] if kind == "issue" else PRIORITY[kind]
        return PlannedItem(key=key, payload={}, priority=priority, lane="write")

    def _spawn(self, ctx: Any, st: SyncState, key: str) -> None:
        if key in st.in_run:
            return
        st.in_run.add(key)
        ctx.spawn(self._item(st, key))

    def _release(self, ctx: Any, st: SyncState, sid: str) -> None:
        """``sid`` now exists (or was rewritten): spawn what waited only for it."""
        for token in (sid, f"@{sid}"):
            for key in st.waiting_on.pop(token, []):
                missing = st.needs.get(key)
                if missing is None:
                    continue
                missing.discard(token)
                if not missing:
                    self._spawn(ctx, st, key)

    # ------------------------------------------------------------------ planning
    async def plan(self, spec: dict[str, Any], ctx: Any):
        if ctx.github is None:
            raise InputError("issue-sync needs a GitHub client (api_url and token)")
        st = await self._load(ctx, planning=True)
        for node in st.nodes.values():
            if f"issue:{node.sid}" not in st.needs and node.sid in st.known:
                ctx.write(RESULT_SQL, [(ctx.run_id, node.sid, "unchanged", st.known[node.sid].number)])
                ctx.count("issues_unchanged")
                ctx.count("api_requests_saved")
        for key, missing in sorted(st.needs.items()):
            if not missing:
                st.in_run.add(key)
                yield self._item(st, key)

    # ------------------------------------------------------------------ processing
    async def process(self, item: Item, ctx: Any) -> Any:
        st = await self._load(ctx)
        kind, _, sid = item.key.partition(":")
        if kind == "meta":
            result = await self._meta(ctx, st)
            st.meta_done = True
            self._release(ctx, st, META)
        elif kind == "issue":
            result = await self._issue(ctx, st, st.nodes[sid])
            self._release(ctx, st, sid)
        elif kind == "link":
            result = await self._link(ctx, st, st.nodes[sid])
        else:
            result = await self._checklist(ctx, st, sid)
        self._report_progress(ctx, st)
        return result

    async def _meta(self, ctx: Any, st: SyncState) -> dict[str, int]:
        gh = ctx.github
        base = _repo_path(st.repo)
        labels = sorted({x for n in st.nodes.values() for x in n.labels})
        have = {x["name"].lower() async for x in gh.paginate(f"{base}/labels")}
        created = 0
        for name in labels:
            if name.lower() in have:
                continue
            payload = {"name": name, "color": LABEL_COLORS.get(name, "ededed")}
            try:
                await gh.request("POST", f"{base}/labels", json=payload, lane="write")
                created += 1
                self._sent(st)
            except ClientError as exc:
                if exc.status_code != 422:       # 422: it exists now (a lost answer, or someone else)
                    raise
        wanted = sorted({n.milestone for n in st.nodes.values() if n.milestone})
        existing = {m["title"]: m["number"]
                    async for m in gh.paginate(f"{base}/milestones", {"state": "all"})}
        for title in wanted:
            if title not in existing:
                try:
                    data = (await gh.request("POST", f"{base}/milestones", json={"title": title},
                                             lane="write")).data
                    existing[title] = data["number"]
                    created += 1
                    self._sent(st)
                except ClientError as exc:
                    if exc.status_code != 422:
                        raise
                    existing.update({m["title"]: m["number"]
                                     async for m in gh.paginate(f"{base}/milestones", {"state": "all"})})
        st.milestones = {t: existing[t] for t in wanted if t in existing}
        now = time.time()
        ctx.write(MAP_SQL, [(st.repo, f"milestone:{t}", n, 0, "", None, None, now) for t, n in st.milestones.items()]
                  + [(st.repo, f"label:{x}", 0, 0, "", None, None, now) for x in labels])
        ctx.count("labels_created", created)
        st.creates_left = max(0, st.creates_left - (len(labels) + len(wanted) - created))   # those existed
        return {"created": created}

    def render(self, st: SyncState, node: Node) -> str:
        parts = [node.body] if node.body else []
        deps = [f"Depends on #{st.known[d].number}" for d in node.depends_on if d in st.known]
        if deps:
            parts.append("\n".join(deps))
        if st.links_mode == "checklist":
            kids = [st.nodes[c] for c in st.children(node.sid) if c in st.known]
            if kids:
                parts.append("\n".join(f"- [{'x' if k.closed else ' '}] #{st.known[k.sid].number}" for k in kids))
        parts.append(MARKER.format(node.sid))
        return "\n\n".join(parts)

    def _fields(self, st: SyncState, node: Node) -> dict[str, Any]:
        out: dict[str, Any] = {"title": node.title, "body": self.render(st, node), "labels": node.labels}
        if node.milestone and node.milestone in st.milestones:
            out["milestone"] = st.milestones[node.milestone]
        return out

    async def _issue(self, ctx: Any, st: SyncState, node: Node) -> dict[str, Any]:
        gh = ctx.github
        owner, name = st.owner_name
        digest = node.content_hash()
        known = st.known.get(node.sid)
        if known is not None and known.content_hash == digest:
            return {"action": "unchanged", "number": known.number}
        if known is not None:
            data = await gh.update_issue(owner, name, known.number, **self._fields(st, node),
                                         state="closed" if node.closed else "open")
            self._sent(st, create=False)
            self._record(ctx, st, node, data, "updated")
            ctx.count("issues_updated")
            return {"action": "updated", "number": data["number"]}
        intent = await ctx.store.fetchone("SELECT sent_at FROM issue_sync_intents WHERE repo=? AND sid=?",
                                          (st.repo, node.sid))
        if intent is not None:
            found = await self._find(ctx, st, node.sid, intent[0])
            if found is not None:
                ctx.count("issues_reconciled")
                fields = self._fields(st, node)
                if found.get("title") != fields["title"] or found.get("body") != fields["body"]:
                    # the file changed since that create was sent: bring the issue up to date
                    found = await gh.update_issue(owner, name, found["number"], **fields)
                    self._sent(st, create=False)
                await self._close_if_done(ctx, st, node, found)
                self._record(ctx, st, node, found, "reconciled")
                return {"action": "reconciled", "number": found["number"]}
        await ctx.store.write(INTENT_SQL, (st.repo, node.sid, ctx.run_id, time.time()))
        try:
            data = await gh.create_issue(owner, name, **self._fields(st, node))
        except (ClientError, RateLimitError):
            # refused before it acted (a 4xx, a rate limit): nothing to look for on the retry
            await ctx.store.write(FORGET_INTENT_SQL, (st.repo, node.sid))
            raise
        self._sent(st)
        ctx.count("issues_created")
        await self._close_if_done(ctx, st, node, data)
        self._record(ctx, st, node, data, "created")
        return {"action": "created", "number": data["number"]}

    async def _close_if_done(self, ctx: Any, st: SyncState, node: Node, data: dict) -> None:
        if node.closed and data.get("state") != "closed":
            owner, name = st.owner_name
            await ctx.github.update_issue(owner, name, data["number"], state="closed")
            self._sent(st, create=False)

    def _record(self, ctx: Any, st: SyncState, node: Node, data: dict, action: str) -> None:
        known = Known(int(data["number"]), int(data["id"]), node.content_hash(), data.get("html_url"))
        st.known[node.sid] = known
        ctx.write(MAP_SQL, [(st.repo, node.sid, known.number, known.issue_id, known.content_hash, known.url,
                             node.path, time.time())])
        ctx.write(FORGET_INTENT_SQL, [(st.repo, node.sid)])
        ctx.write(RESULT_SQL, [(ctx.run_id, node.sid, action, known.number)])

    async def _find(self, ctx: Any, st: SyncState, sid: str, since: float) -> dict | None:
        """The issue carrying ``sid``'s marker, if a create whose answer we never read made it."""
        gh = ctx.github
        hits = [i for i in await gh.search_issues(f'repo:{st.repo} in:body "batchdeck:id={sid}"')
                if marker_of(i.get("body")) == sid]
        if not hits:        # search is indexed with a delay: read the newest issues themselves
            since_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since - 120))
            seen = 0
            async for issue in gh.paginate(f"{_repo_path(st.repo)}/issues",
                                           {"state": "all", "sort": "created", "direction": "desc",
                                            "since": since_iso}):
                if marker_of(issue.get("body")) == sid:
                    hits.append(issue)
                seen += 1
                if seen >= self._recent_scan:
                    break
        if not hits:
            return None
        hits.sort(key=lambda i: i["number"])
        if len(hits) > 1:
            ctx.count("duplicates_seen", len(hits) - 1)
        return hits[0]

    async def _link(self, ctx: Any, st: SyncState, node: Node) -> dict[str, Any]:
        gh = ctx.github
        parent_sid = node.parent
        assert parent_sid is not None, "a link item is planned only for a node with a parent"
        child, parent = st.known[node.sid], st.known[parent_sid]
        base = _repo_path(st.repo)
        previous = st.links.get(node.sid)
        if previous == parent_sid:        # linked since this item was planned (another run, a resume)
            return {"action": "linked", "child": child.number, "parent": parent.number}
        payload: dict[str, Any] = {"sub_issue_id": child.issue_id}
        if previous is not None and previous != parent_sid:
            payload["replace_parent"] = True
        try:
            await gh.request("POST", f"{base}/issues/{parent.number}/sub_issues", json=payload, lane="write")
            self._sent(st)
            ctx.count("links_created")
        except ClientError as exc:
            if exc.status_code != 422:
                raise
            # already linked (a lost answer on an earlier try)? the parent says so
            current = (await gh.request("GET", f"{base}/issues/{child.number}/parent", lane="read",
                                        conditional=False)).data
            if not current or current.get("number") != parent.number:
                raise
        st.links[node.sid] = parent_sid
        ctx.write(LINK_SQL, [(st.repo, node.sid, parent_sid, "sub-issue")])
        return {"action": "linked", "child": child.number, "parent": parent.number}

    async def _checklist(self, ctx: Any, st: SyncState, parent_sid: str) -> dict[str, Any]:
        owner, name = st.owner_name
        node = st.nodes[parent_sid]
        number = st.known[parent_sid].number
        kids = st.children(parent_sid)
        if all(st.links.get(kid) == parent_sid for kid in kids):
            return {"action": "checklist", "parent": number, "children": len(kids)}
        await ctx.github.update_issue(owner, name, number, body=self.render(st, node))
        self._sent(st, create=False)
        for kid in kids:
            st.links[kid] = parent_sid
        ctx.write(LINK_SQL, [(st.repo, kid, parent_sid, "checklist") for kid in kids])
        ctx.count("checklists_written")
        return {"action": "checklist", "parent": number, "children": len(kids)}

    # ------------------------------------------------------------------ pace and progress
    @property
    def _recent_scan(self) -> int:
        """Newest issues read when search does not (yet) find a marker."""
        return self._options.recent_issues if self._options is not None else 300

    def _sent(self, st: SyncState, *, create: bool = True) -> None:
        now = time.time()
        if create:
            st.sent.append(now)
            st.creates_left = max(0, st.creates_left - 1)
        else:
            st.patches_left = max(0, st.patches_left - 1)

    def budget(self, ctx: Any) -> Budget:
        """The pace now: the write lane's (adaptive) budget, under our own cap if one is set."""
        gh = ctx.github
        per_minute = float(Budget.per_minute)
        for lane in gh.lanes() if gh is not None and hasattr(gh, "lanes") else []:
            if lane.name == "write" and lane.content_budget_per_min is not None:
                per_minute = lane.content_budget_per_min
        per_hour = Budget.per_hour
        if self._options is not None:
            per_minute = min(per_minute, self._options.creates_per_minute)
            per_hour = min(per_hour, self._options.creates_per_hour)
        scale = float(getattr(gh, "time_scale", 1.0) or 1.0)
        return Budget(per_minute=per_minute, per_hour=per_hour, time_scale=scale)

    @staticmethod
    def _phase(st: SyncState) -> str:
        """labels → issues (until every issue says what its file says) → links → done."""
        if not st.meta_done:
            return "labels"
        if any(st.known.get(sid) is None or st.known[sid].content_hash != node.content_hash()
               for sid, node in st.nodes.items()):
            return "issues"
        return "links" if st.creates_left + st.patches_left else "done"

    def _report_progress(self, ctx: Any, st: SyncState) -> None:
        now = time.time()
        phase = self._phase(st)
        if (self.progress and now - self._progress_at < PROGRESS_EVERY_S and st.creates_left + st.patches_left
                and phase == self.progress.get("phase")):
            return          # a new phase is reported at once: the console shows it as it starts
        self._progress_at = now
        budget = self.budget(ctx)
        while st.sent and st.sent[0] <= now - budget.hour_s:
            st.sent.popleft()
        eta = finish_in(st.creates_left, st.patches_left, budget, st.sent, now)
        in_minute = sum(1 for t in st.sent if t > now - budget.minute_s)
        self.progress = {
            "creates_left": st.creates_left, "patches_left": st.patches_left,
            "budget_per_minute": round(budget.per_minute, 1), "budget_per_hour": budget.per_hour,
            "used_last_minute": in_minute, "used_last_hour": len(st.sent),
            "finish_in_s": round(eta, 3), "finish_at": now + eta,
            "phase": phase,
        }
        ctx.write(PROGRESS_SQL, [(ctx.run_id, now, json.dumps(self.progress))])


def _repo_path(repo: str) -> str:
    owner, _, name = repo.partition("/")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


async def load_known(store: Any, st: SyncState) -> None:
    """The sync map, links and milestones of ``st.repo`` from SQLite."""
    rows = await store.fetchall("SELECT sid, number, issue_id, content_hash, url FROM issue_sync_map WHERE repo=?",
                                (st.repo,))
    labels: set[str] = set()
    for sid, number, issue_id, digest, url in rows:
        if sid.startswith("milestone:"):
            st.milestones[sid[10:]] = number
        elif sid.startswith("label:"):
            labels.add(sid[6:])
        else:
            st.known[sid] = Known(number, issue_id, digest, url)
    wanted_labels = {x for n in st.nodes.values() for x in n.labels}
    wanted_milestones = {n.milestone for n in st.nodes.values() if n.milestone}
    st.meta_done = wanted_labels <= labels and wanted_milestones <= set(st.milestones)
    for child, parent in await store.fetchall("SELECT child, parent FROM issue_sync_links WHERE repo=?", (st.repo,)):
        st.links[child] = parent
