"""The results view of ioc-scan runs: which repo, file and line pulls a compromised package.

Registered as ioc-scan's console view (``batchdeck.views``: ``ioc-scan =
"console.views.ioc_scan:view"``). The findings are read through the console
session with the kind's own ``findings`` query (``engine.jobs.ioc_scan.queries``)
by a worker in keyset pages, up to
``MAX_FINDINGS`` (the status line says when there are more: ``batchdeck
findings RUN`` exports them all), into plain dicts drawn by a Line-API
:class:`RowTable`: package and version stay readable at 80 columns, paths are
cut in the middle, less important columns go first. ``/`` filters (words match
any column, ``column:word`` one column), ``s`` cycles the sort column, ``g``
groups by package, then by repository, and ``e`` exports exactly what is shown
(filtered and sorted) to CSV or JSON.
"""

from __future__ import annotations

from itertools import groupby
from typing import TYPE_CHECKING, Any

from textual.content import Content
from textual.widgets import Input, Static

from console import commands
from console.appref import batchdeck_app
from console.messages import ExportRequested
from console.panes.keybar import KeyBar
from console.panes.messages import FindingsLoaded
from console.panes.rowtable import Column, GroupLine, RowTable, matches_terms
from console.views.filtered import FilteredView
from engine.safetext import visible

if TYPE_CHECKING:
    from console.session import ConsoleSession
    from engine.models import RunInfo

PAGE = 1000
MAX_FINDINGS = 100_000

COLUMNS = [
    # whole up to 64 characters when there is room; never under 32, so a name stays recognisable
    Column("package_name", "package", priority=0, min_width=32, max_width=64),
    Column("version", "version", priority=1, cut="keep", max_width=16),
    Column("repo", "repo", priority=2, min_width=16, max_width=40),
    Column("file_path", "file", priority=3, min_width=24, max_width=60, cut="middle"),
    Column("kind", "kind", priority=4, cut="keep"),
    Column("ecosystem", "ecosystem", priority=4, cut="keep", max_width=10),
    Column("line_number", "line", priority=6, right=True, cut="keep", max_width=6),
    Column("ioc_source", "source", priority=7, min_width=20, max_width=30),
]
EXPORT_KEYS = ("repo", "file_path", "line_number", "package_name", "version", "ecosystem", "ioc_source", "kind")
SORTS = ["package_name", "repo", "file_path", "version", "ecosystem", "kind", "ioc_source"]
GROUPS = [None, "package_name", "repo"]
TITLES = {c.key: c.title for c in COLUMNS}
# filter prefixes: the column titles and a few short names
FIELD_NAMES = {**{c.title: c.key for c in COLUMNS}, "pkg": "package_name", "eco": "ecosystem",
               "path": "file_path"}


def finding_matches(row: dict[str, Any], terms: list[str]) -> bool:
    """The ``/`` filter over findings (their ids are not searched)."""
    return matches_terms(row, terms, FIELD_NAMES, frozenset({"id"}))


def _sort_value(row: dict[str, Any], key: str) -> tuple:
    return (str(row.get(key) or "").lower(), str(row.get("repo") or ""), str(row.get("file_path") or ""),
            int(row.get("line_number") or 0))


def view(session: ConsoleSession, run: RunInfo) -> FindingsScreen:
    """The ``batchdeck.views`` entry point of ioc-scan (a :class:`console.views.ViewFactory`)."""
    return FindingsScreen(session, run.id)


class FindingsScreen(FilteredView):
    FILTER_INPUT = "findings-filter"
    COMMAND_SCOPE = "results"
    BINDINGS = commands.bindings(COMMAND_SCOPE)
    DEFAULT_CSS = """
    FindingsScreen #findings-filter { display: none; height: 1; border: none; padding: 0 1; }
    FindingsScreen.-filtering #findings-filter { display: block; }
    FindingsScreen #findings-title { height: 1; background: $panel; padding: 0 1; }
    FindingsScreen #findings-status { height: 1; color: $foreground-muted; padding: 0 1; }
    """

    def __init__(self, session: ConsoleSession, run_id: int) -> None:
        super().__init__()
        self.session = session
        self.run_id = run_id
        self.rows: list[dict[str, Any]] = []
        self.shown: list[dict[str, Any]] = []
        self.terms: list[str] = []
        self.sort_key = SORTS[0]
        self.group_key: str | None = None
        self.fetching = True
        self.truncated = False

    def compose(self):
        yield Static(f"Findings of run #{self.run_id}", id="findings-title", markup=False)
        yield Input(placeholder="filter: words match any column; package:, repo:, file:, eco:, kind:, version:",
                    id="findings-filter")
        yield RowTable(COLUMNS, id="findings")
        yield Static("loading findings…", id="findings-status", markup=False)
        yield KeyBar(self.COMMAND_SCOPE)

    @property
    def table(self) -> RowTable:
        return self.query_one(RowTable)

    def on_mount(self) -> None:
        self.table.focus()
        if not self.session.has_database:
            self.fetching = False
            self.query_one("#findings-status", Static).update("no database: findings cannot be listed")
            return
        batchdeck_app(self).run_task(self._load(), name=f"load findings of run #{self.run_id}",
                                     group="findings", exclusive=True)

    async def _load(self) -> None:
        after_id, loaded = 0, 0
        while loaded < MAX_FINDINGS:
            rows = await self.session.kind_query(self.run_id, "findings", after_id=after_id, limit=PAGE)
            more = len(rows) >= PAGE
            loaded += len(rows)
            self.post_message(FindingsLoaded(self.run_id, rows, more=more and loaded < MAX_FINDINGS))
            if not more:
                return
            after_id = max(int(r.get("id") or 0) for r in rows)
        self.truncated = True

    def on_findings_loaded(self, message: FindingsLoaded) -> None:
        self.rows.extend(message.rows)
        self.fetching = message.more
        self.refilter()

    # -- what is shown -------------------------------------------------------------------------
    def refilter(self) -> None:
        rows = [r for r in self.rows if finding_matches(r, self.terms)] if self.terms else list(self.rows)
        sort_key = self.group_key or self.sort_key
        rows.sort(key=lambda r: _sort_value(r, sort_key) + _sort_value(r, self.sort_key))
        self.shown = rows
        lines: list[dict[str, Any] | GroupLine] = []
        group_key = self.group_key
        if group_key is None:
            lines = list(rows)
        else:
            for value, group in groupby(rows, key=lambda r: r.get(group_key)):
                members = list(group)
                other = "repo" if group_key == "package_name" else "package_name"
                spread = len({m.get(other) for m in members})
                noun = "repo" if other == "repo" else "package"
                lines.append(GroupLine(f"▾ {visible(value)} — {len(members):,} finding"
                                       f"{'s' if len(members) != 1 else ''} in {spread:,} "
                                       f"{noun}{'s' if spread != 1 else ''}"))
                lines.extend(members)
        self.table.set_lines(lines)
        self._update_status()

    def _update_status(self) -> None:
        total, shown = len(self.rows), len(self.shown)
        count = f"{shown:,} of {total:,}" if self.terms else f"{total:,}"
        title = Content.assemble((f"Findings of run #{self.run_id}", "b"), "  ",
                                 (f"{count} finding{'s' if total != 1 else ''}", "$error b" if total else ""))
        self.query_one("#findings-title", Static).update(title)
        bits = [f"sorted by {TITLES[self.sort_key]}"]
        if self.group_key:
            bits.append(f"grouped by {TITLES[self.group_key]}")
        if self.terms:
            bits.append("filter: " + visible(" ".join(self.terms)) + " (esc clears)")
        if self.fetching:
            bits.append("loading…")
        if self.truncated:
            bits.append(f"first {MAX_FINDINGS:,} shown: 'batchdeck findings {self.run_id}' exports all")
        if not total and not self.fetching:
            bits = ["no findings for this run"]
        self.query_one("#findings-status", Static).update(" · ".join(bits))

    # -- actions ----------------------------------------------------------------------------------
    def action_back(self) -> None:
        box = self.query_one("#findings-filter", Input)
        if self.has_class("-filtering") or self.terms:
            self.remove_class("-filtering")
            box.value = ""
            self.terms = []
            self.refilter()
            self.table.focus()
            return
        self.app.pop_screen()

    def action_sort(self) -> None:
        self.sort_key = SORTS[(SORTS.index(self.sort_key) + 1) % len(SORTS)]
        self.refilter()
        self.notify(f"sorted by {TITLES[self.sort_key]}", timeout=2)

    def action_group(self) -> None:
        self.group_key = GROUPS[(GROUPS.index(self.group_key) + 1) % len(GROUPS)]
        self.refilter()
        self.notify(f"grouped by {TITLES[self.group_key]}" if self.group_key else "not grouped", timeout=2)

    def export_rows(self) -> tuple[str, list[dict[str, Any]]]:
        """What ``e`` writes: the findings as filtered and sorted here, one dict each."""
        return f"run-{self.run_id}-findings", [{k: r.get(k) for k in EXPORT_KEYS} for r in self.shown]

    def action_export(self) -> None:
        self.post_message(ExportRequested(*self.export_rows()))
