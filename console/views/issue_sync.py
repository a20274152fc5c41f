"""The results view of an issue-sync run: every item of the planning tree and what the sync did to it.

One row per PRD, epic and task, in tree order (a PRD, then each epic followed by
its tasks): its state (created, updated, unchanged, reconciled, failed, or still
to do), its issue number, its parent's number and whether it is linked under it.
Above the table, the counts and, while writes remain, the pace: the phase
(issues, then links), the writes left, the write budget (per minute and per
hour, used and allowed) and the expected finish at the current pace. A running
sync is re-read every couple of seconds.

Everything comes from the kind's named queries (``items``, ``counts``,
``progress``) through the session; titles and paths are the files' own text and
are drawn as plain text (:class:`RowTable`, ``visible``), never as markup.
``/`` filters (words match any column, ``state:failed``, ``link:pending``...),
``s`` cycles the sort, ``g`` groups by state, ``e`` exports what is shown,
``esc`` clears the filter, then goes back.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from textual.message import Message
from textual.widgets import Input, Static

from console import commands
from console.appref import batchdeck_app
from console.messages import ExportRequested
from console.panes.keybar import KeyBar
from console.panes.rowtable import Column, GroupLine, RowTable, matches_terms
from console.views.filtered import FilteredView
from engine.models import RunInfo, RunState
from engine.safetext import visible

REFRESH_S = 2.0
ACTIVE = (RunState.PENDING, RunState.RUNNING)
COLUMNS = [
    Column("title", "title", priority=0, min_width=24, max_width=70),
    Column("state", "state", priority=1, cut="keep"),
    Column("issue", "issue", priority=1, cut="keep", right=True, max_width=8),
    Column("parent_issue", "parent", priority=2, cut="keep", right=True, max_width=8),
    Column("link", "link", priority=2, cut="keep"),
    Column("path", "file", priority=4, min_width=16, max_width=50, cut="middle"),
    Column("error", "error", priority=5, min_width=12, max_width=60),
]
EXPORT_KEYS = ("sid", "kind", "path", "title", "state", "number", "parent", "parent_number", "link", "error")
FIELD_NAMES = {"title": "title", "state": "state", "issue": "number", "parent": "parent_number", "link": "link",
               "kind": "kind", "file": "path", "path": "path", "error": "error", "id": "sid"}
SORTS = ("tree", "state", "issue")
GROUPS = (None, "state")
STATE_ORDER = {s: i for i, s in enumerate(("failed", "sending", "pending", "waiting", "created", "updated",
                                           "reconciled", "unchanged"))}
INDENT = {"prd": "", "epic": "  ", "part": "    ", "task": "    "}


def row_matches(row: dict[str, Any], terms: list[str]) -> bool:
    """The ``/`` filter over the sync's items."""
    return matches_terms(row, terms, FIELD_NAMES)


def pace_text(progress: dict[str, Any], state: RunState) -> str:
    """The phase, the writes left, the write budget and the expected finish (plain text)."""
    if not progress:
        return "no writes reported yet" if state in ACTIVE else "no writes were needed"
    left = progress["creates_left"] + progress["patches_left"]
    budget = (f"write budget {progress['budget_per_minute']:g}/min ({progress['used_last_minute']} used), "
              f"{progress['budget_per_hour']}/h ({progress['used_last_hour']} used)")
    if not left:
        return f"all writes sent · {budget}"
    finish = time.strftime("%H:%M:%S", time.localtime(progress["finish_at"]))
    eta = f"finish ≈ {finish} (in {_duration(progress['finish_in_s'])})" if state in ACTIVE else \
        f"stopped ({state.value}): resume to send them"
    return (f"phase: {progress['phase']} · {progress['creates_left']} creates and {progress['patches_left']} "
            f"updates left · {budget} · {eta}")


def _duration(seconds: float) -> str:
    """A finish estimate rounded as a person says it (25 min, 1.5 h): coarser on purpose than
    engine.timefmt.duration, which counts down an ETA to the second."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"



@dataclass(eq=False)
class SyncLoaded(Message):
    """What the view's worker read: the run, its item rows, its counts and its last pace."""

    run: RunInfo
    rows: list[dict[str, Any]]
    counts: dict[str, int]
    progress: dict[str, Any]


class IssueSyncView(FilteredView):
    FILTER_INPUT = "sync-filter"
    COMMAND_SCOPE = "results"           # / filter, s sort, g group, e export, esc back
    BINDINGS = commands.bindings(COMMAND_SCOPE)
    DEFAULT_CSS = """
    IssueSyncView #sync-filter { display: none; height: 1; border: none; padding: 0 1; }
    IssueSyncView.-filtering #sync-filter { display: block; }
    IssueSyncView #sync-title { height: 1; background: $panel; padding: 0 1; text-style: bold; }
    IssueSyncView #sync-pace { height: 1; padding: 0 1; }
    IssueSyncView #sync-status { height: 1; color: $foreground-muted; padding: 0 1; }
    """

    def __init__(self, session: Any, run: RunInfo) -> None:
        super().__init__()
        self.session = session
        self.run = run
        self.rows: list[dict[str, Any]] = []
        self.shown: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}
        self.progress: dict[str, Any] = {}
        self.terms: list[str] = []
        self.sort_key = SORTS[0]
        self.group_key: str | None = None
        self.loaded = asyncio.Event()       # set once the first rows are on screen (tests wait on it)

    def compose(self):
        yield Static(f"issue-sync · run #{self.run.id}", id="sync-title", markup=False)
        yield Static("", id="sync-pace", markup=False)
        yield Input(placeholder="filter: words match any column; state:, link:, kind:, file:, title:, issue:",
                    id="sync-filter")
        yield RowTable(COLUMNS, id="sync-items")
        yield Static("loading the sync…", id="sync-status", markup=False)
        yield KeyBar(self.COMMAND_SCOPE)

    @property
    def table(self) -> RowTable:
        return self.query_one(RowTable)

    def on_mount(self) -> None:
        self.table.focus()
        if not self.session.has_database:
            self.query_one("#sync-status", Static).update("no database: the sync's items cannot be listed")
            return
        self.load()
        if self.run.state in ACTIVE:
            self.set_interval(REFRESH_S, self.load)

    def load(self) -> None:
        batchdeck_app(self).run_task(self._read(), name=f"load the sync of run #{self.run.id}",
                                     group="issue-sync", exclusive=True)

    async def _read(self) -> None:
        session, run_id = self.session, self.run.id
        run = await session.run(run_id) or self.run
        rows = await session.kind_query(run_id, "items")
        counts = await session.kind_query(run_id, "counts")
        progress = await session.kind_query(run_id, "progress")
        self.post_message(SyncLoaded(run, rows, counts, progress))

    def on_sync_loaded(self, message: SyncLoaded) -> None:
        self.run, self.counts, self.progress = message.run, message.counts, message.progress
        self.rows = [self._display(r) for r in message.rows]
        self.refilter()
        self.loaded.set()

    @staticmethod
    def _display(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "title": INDENT.get(row["kind"], "") + row["title"],
                "issue": f"#{row['number']}" if row.get("number") else "",
                "parent_issue": f"#{row['parent_number']}" if row.get("parent_number") else ""}

    # -- what is shown -------------------------------------------------------------------------
    def refilter(self) -> None:
        rows = [r for r in self.rows if row_matches(r, self.terms)] if self.terms else list(self.rows)
        if self.sort_key == "state" or self.group_key == "state":
            rows.sort(key=lambda r: STATE_ORDER.get(r["state"], 99))        # stable: tree order within
        elif self.sort_key == "issue":
            rows.sort(key=lambda r: (r.get("number") is None, r.get("number") or 0))
        self.shown = rows
        lines: list[dict[str, Any] | GroupLine] = []
        group_key = self.group_key
        if group_key is None:
            lines = list(rows)
        else:
            for value, group in groupby(rows, key=lambda r: r.get(group_key)):
                members = list(group)
                lines.append(GroupLine(f"▾ {visible(value)} — {len(members):,} item{'s' if len(members) != 1 else ''}"))
                lines.extend(members)
        self.table.set_lines(lines)
        self._update_header()

    def _update_header(self) -> None:
        repo = visible(self.run.spec.get("repo", "?"))
        # what happened (failed always said, even when none did), short enough for 80 columns
        counts = ", ".join(f"{self.counts.get(a, 0):,} {a}" for a in ("created", "updated", "unchanged",
                                                                      "reconciled", "failed")
                           if self.counts.get(a) or a == "failed")
        self.query_one("#sync-title", Static).update(
            f"issue-sync #{self.run.id} → {repo} · {self.run.state.value} · {len(self.rows):,} items: {counts}")
        self.query_one("#sync-pace", Static).update(pace_text(self.progress, self.run.state))
        bits = [f"sorted by {self.sort_key}"]
        if self.group_key:
            bits.append(f"grouped by {self.group_key}")
        if self.terms:
            bits.append(f"{len(self.shown):,} of {len(self.rows):,} shown · filter: {visible(' '.join(self.terms))}"
                        " (esc clears)")
        if not self.rows:
            bits = ["this run has no items"]
        self.query_one("#sync-status", Static).update(" · ".join(bits))

    def export_rows(self) -> tuple[str, list[dict[str, Any]]]:
        return f"sync-run-{self.run.id}", [{k: r.get(k) for k in EXPORT_KEYS} | {"title": r["title"].strip()}
                                             for r in self.shown]

    # -- actions ----------------------------------------------------------------------------------
    def action_back(self) -> None:
        if self.has_class("-filtering") or self.terms:
            self.remove_class("-filtering")
            self.query_one("#sync-filter", Input).value = ""
            self.terms = []
            self.refilter()
            self.table.focus()
            return
        self.app.pop_screen()

    def action_sort(self) -> None:
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self.refilter()

    def action_group(self) -> None:
        self.group_key = GROUPS[(GROUPS.index(self.group_key) + 1) % len(GROUPS)]
        self.refilter()

    def action_export(self) -> None:
        self.post_message(ExportRequested(*self.export_rows()))


def view(session: Any, run: RunInfo) -> IssueSyncView:
    """The ``batchdeck.views`` entry point of issue-sync."""
    return IssueSyncView(session, run)
