"""What an ioc-scan run (with its replays) covered, and the verdict it may honestly print.

After an incident "No compromised packages found." is a promise about every
repository in scope. It may be printed only when the run *completed* and every
repository of it was scanned: no failed or unreached item, no listing that
failed, nothing pending. Anything else is ``INCOMPLETE`` with the list of what
was not scanned and why. Every output format (table, JSON, CSV sidecar, SARIF)
takes its verdict from :class:`Coverage`, so they cannot disagree.

Coverage is read from the store, not from the job's internals: items (their
keys, states and last errors) and the run's state and message. A run and its
replay children are one *family*: an item that failed in the original run and
was done by a replay is covered; each gap names the run that last tried it.

Item keys: ``repo:<owner>/<name>`` and ``file:<owner>/<name>:<path>`` are the
job's; any other key (an org listing page, ...) is a *target not listed*.
Repositories outside the scan's scope (archived and forks unless included, names
not matching ``--match``) are not gaps; the job counts archived and forks it
left out (``excluded_archived``/``excluded_forks``) and the verdict names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

from engine.models import RunState
from engine.safetext import visible

REPO, FILE = "repo:", "file:"
#: how many unparsable files the verdict names (the rest are counted; every output lists them all)
UNPARSABLE_NAMED = 3
NOT_REACHED = "not reached (the run stopped before it)"


def repositories(n: int) -> str:
    return f"{n} repository" if n == 1 else f"{n} repositories"


class RepoNotScanned(TypedDict):
    """A repository with a gap, as the outputs print it (JSON ``coverage.repos_not_scanned``)."""

    repo: str
    reason: str
    run_id: int                         # the run that last tried it


@dataclass(frozen=True, slots=True)
class Gap:
    """Something in scope that was not scanned."""

    kind: str           # "repo", "file", "target" (a listing), "run" (the run itself did not finish)
    target: str         # owner/name, owner/name:path, the item key, or "run N"
    reason: str
    run_id: int

    @property
    def repo(self) -> str | None:
        if self.kind == "repo":
            return self.target
        if self.kind == "file":
            return self.target.partition(":")[0]
        return None


@dataclass(slots=True)
class Coverage:
    run_id: int                          # the family's root: the run the user started
    runs: list[int]                      # the root and its replays, oldest first
    state: RunState                      # the root's state
    message: str | None
    planned: bool                        # the root finished listing what to scan
    repos_scanned: set[str] = field(default_factory=set)
    gaps: list[Gap] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    unparsable: int = 0                  # files read but not parsable: not retried, named with the verdict
    unparsable_named: list[str] = field(default_factory=list)   # the first few of them, "owner/name:path"

    # ------------------------------------------------------------------ the verdict
    @property
    def complete(self) -> bool:
        return self.state is RunState.COMPLETED and self.planned and not self.gaps

    @property
    def repos_not_scanned(self) -> list[RepoNotScanned]:
        """One entry per repository with any gap: its own failure, or how many of its files were missed."""
        own = {g.target: g for g in self.gaps if g.kind == "repo"}
        files: dict[str, list[Gap]] = {}
        for g in self.gaps:
            if g.kind == "file" and g.repo not in own:
                files.setdefault(g.repo or "", []).append(g)
        out = [RepoNotScanned(repo=repo, reason=g.reason, run_id=g.run_id) for repo, g in own.items()]
        out += [RepoNotScanned(repo=repo, reason=f"{len(gs)} file(s) not scanned: {gs[0].target.partition(':')[2]}: "
                               f"{gs[0].reason}", run_id=gs[-1].run_id) for repo, gs in files.items()]
        return sorted(out, key=lambda d: d["repo"])

    def incomplete_reasons(self) -> list[str]:
        """Why the verdict is not clean, one short sentence each (empty when complete)."""
        reasons: list[str] = []
        if self.state is not RunState.COMPLETED:
            reasons.append(f"run {self.run_id} is {self.state.value}" + (f": {self.message}" if self.message else ""))
        if not self.planned:
            reasons.append("the repository listing did not finish: repositories not yet listed are not counted")
        not_scanned = self.repos_not_scanned
        if not_scanned:
            reasons.append(f"{repositories(len(not_scanned))} not (fully) scanned")
        targets = [g for g in self.gaps if g.kind == "target"]
        if targets:
            reasons.append(f"{len(targets)} listing(s) failed: repositories in them are unknown")
        return reasons

    def excluded_note(self) -> str:
        parts = [f"{n} {what}" for what, n in (("archived", self.excluded.get("archived", 0)),
                                                ("forks", self.excluded.get("forks", 0))) if n]
        if not parts:
            return ""
        return (f"Out of scope, not scanned: {' and '.join(parts)} "
                "(excluded by default; --include-archived / --include-forks scan them).")

    def verdict(self, findings: int) -> str:
        """The one line every format leads with."""
        scanned = len(self.repos_scanned)
        if not self.complete:
            what = f"{findings} finding(s) so far" if findings else "no finding in what was scanned"
            return (f"INCOMPLETE: {what}; {repositories(scanned)} scanned, "
                    f"{len(self.repos_not_scanned)} not scanned — " + "; ".join(self.incomplete_reasons()) + ".")
        caveat = (f"; {self.unparsable} file(s) could not be parsed and were not checked (listed with the "
                  f"findings){self._named_unparsable()}") if self.unparsable else ""
        if findings:
            return f"{findings} finding(s); all {repositories(scanned)} in scope scanned{caveat}."
        return f"No compromised packages found. All {repositories(scanned)} in scope scanned{caveat}."

    def _named_unparsable(self) -> str:
        """": owner/name:path, ..." for the verdict: a file left unchecked (unreadable, or too
        large for the memory settings) is named, not only counted. Made visible: repository text."""
        if not self.unparsable_named:
            return ""
        more = self.unparsable - len(self.unparsable_named)
        return ": " + ", ".join(visible(name) for name in self.unparsable_named) + (
            f" and {more} more" if more > 0 else "")

    def to_dict(self) -> dict[str, Any]:
        """The JSON ``coverage`` object (exact data: reasons are not made visible here)."""
        return {
            "complete": self.complete,
            "run_id": self.run_id,
            "runs": list(self.runs),
            "state": self.state.value,
            "message": self.message,
            "listing_finished": self.planned,
            "repos_scanned": len(self.repos_scanned),
            "repos_not_scanned": self.repos_not_scanned,
            "files_not_scanned": [{"repo": g.repo, "path": g.target.partition(":")[2], "reason": g.reason,
                                   "run_id": g.run_id} for g in self.gaps if g.kind == "file"],
            "targets_not_listed": [{"target": g.target, "reason": g.reason, "run_id": g.run_id}
                                   for g in self.gaps if g.kind == "target"],
            "excluded": dict(self.excluded),
            "files_not_parsable": self.unparsable,
            "items": dict(self.items),
            "incomplete_reasons": self.incomplete_reasons(),
        }


# ---------------------------------------------------------------------- reading it from the store
async def family(store: Any, run_id: int) -> list[int]:
    """The root of ``run_id``'s replay family and every replay under it, oldest first."""
    run = await store.require_run(run_id)
    seen = {run.id}
    while run.parent_id is not None and run.parent_id not in seen:
        parent = await store.get_run(run.parent_id)
        if parent is None:
            break
        run = parent
        seen.add(run.id)
    rows = await store.fetchall(
        "WITH RECURSIVE fam(id) AS (SELECT ? UNION SELECT r.id FROM runs r JOIN fam ON r.parent_id = fam.id) "
        "SELECT id FROM fam ORDER BY id", (run.id,))
    return [r[0] for r in rows]


def _gap(key: str, state: str, error: str | None, run_id: int) -> Gap:
    if state == "failed":
        reason = error or "failed"
    elif state == "skipped":
        reason = error or "skipped"
    else:
        reason = NOT_REACHED
    if key.startswith(REPO):
        return Gap("repo", key[len(REPO):], reason, run_id)
    if key.startswith(FILE):
        return Gap("file", key[len(FILE):], reason, run_id)
    return Gap("target", key, reason, run_id)


async def coverage(store: Any, run_id: int) -> Coverage:
    """The coverage of ``run_id``'s family (the run, the run it replays, and their replays)."""
    runs = await family(store, run_id)
    root = await store.require_run(runs[0])
    flags = await store.run_flags(root.id)
    marks = ",".join("?" * len(runs))
    # newest attempt last, so the reason kept for a key is the latest run's
    rows = await store.fetchall(
        f"SELECT i.key, i.state, i.last_error, i.run_id FROM items i WHERE i.run_id IN ({marks}) "
        f"AND i.state != 'done' AND NOT EXISTS (SELECT 1 FROM items d WHERE d.run_id IN ({marks}) "
        f"AND d.key = i.key AND d.state = 'done') ORDER BY i.key, i.run_id", (*runs, *runs))
    latest: dict[str, Gap] = {}
    for key, state, error, rid in rows:
        latest[key] = _gap(key, state, error, rid)
    gaps = list(latest.values())
    done_repos = await store.fetchall(
        f"SELECT DISTINCT substr(key, {len(REPO) + 1}) FROM items WHERE run_id IN ({marks}) "
        f"AND state = 'done' AND key LIKE 'repo:%'", runs)
    with_gaps = {g.repo for g in gaps if g.repo}
    counts = dict(await store.fetchall(
        f"SELECT state, count(*) FROM items WHERE run_id IN ({marks}) GROUP BY state", runs))
    counters = (flags.get("stats") or {}).get("counters", {})
    unparsable = await store.fetchone(
        f"SELECT count(DISTINCT repo || ':' || file_path) FROM file_errors WHERE run_id IN ({marks})", runs)
    named = await store.fetchall(
        f"SELECT DISTINCT repo || ':' || file_path FROM file_errors WHERE run_id IN ({marks}) "
        f"ORDER BY 1 LIMIT {UNPARSABLE_NAMED}", runs)
    return Coverage(
        run_id=root.id, runs=runs, state=root.state, message=root.message, planned=bool(flags.get("planned")),
        repos_scanned={r[0] for r in done_repos} - with_gaps, gaps=gaps,
        excluded={"archived": int(counters.get("excluded_archived", 0)),
                  "forks": int(counters.get("excluded_forks", 0))},
        items={"in_family": sum(counts.values()), "not_scanned": len(gaps),
               **{state: counts.get(state, 0) for state in ("done", "failed", "pending", "in_flight", "skipped")}},
        unparsable=unparsable[0] if unparsable else 0, unparsable_named=[r[0] for r in named],
    )
