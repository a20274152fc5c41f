"""The results of an ast-index run: the files of the index, their symbols and imports, a symbol lookup.

Opened with ``f`` on an ast-index run (entry point ``batchdeck.views: ast-index``).
The head says how the run went: files/s, files/s per worker process, batch sizes,
CPU efficiency, files with errors and files not indexed. Below it, one row per file
of the latest index of the run's directory (path, language, lines, symbols,
imports, error), read through the kind's named queries in keyset pages into a
Line-API :class:`~console.panes.rowtable.RowTable` (plain text: a file name is
data, never markup, and its control characters show as symbols).

Keys: ``/`` filters the list shown (words match any column; ``lang:``, ``status:``,
``path:``, ``error:`` one column; ``status:error`` lists the errors), ``s`` sorts
the files by the next column, ``enter`` opens a file's symbols and imports (or, in
a symbol list, the file of the selected row), ``l`` looks up a symbol (the selected
one in a symbol list, else a name you type): where it is defined and which files
import it. ``e`` exports what is shown, ``esc`` goes back. Its keys are the
``index`` scope of :mod:`console.commands` (the results keys, plus ``enter`` and
``l``); the data comes only through ``session.kind_query`` (the view protocol of
:mod:`console.views`).
"""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Static
from textual.worker import Worker

from console import commands
from console.messages import ExportRequested
from console.panes.keybar import KeyBar
from console.panes.rowtable import Column, RowTable, matches_terms
from engine.safetext import visible

PAGE = 2000
MAX_FILES = 200_000
HEAD_REFRESH_S = 2.0
LIVE_STATES = {"pending", "running", "paused"}

FILE_COLUMNS = [
    Column("path", "path", priority=0, min_width=24, max_width=90, cut="middle"),
    Column("language", "language", priority=2, cut="keep", max_width=10),
    Column("lines", "lines", priority=3, right=True, cut="keep", max_width=7),
    Column("symbols", "symbols", priority=3, right=True, cut="keep", max_width=7),
    Column("imports", "imports", priority=4, right=True, cut="keep", max_width=7),
    Column("error", "error", priority=1, min_width=16, max_width=80),
]
SYMBOL_COLUMNS = [
    Column("kind", "kind", priority=1, cut="keep", max_width=12),
    Column("name", "name", priority=0, min_width=16, max_width=60),
    Column("line", "line", priority=2, right=True, cut="keep", max_width=7),
    Column("parent", "in", priority=3, min_width=8, max_width=40),
    Column("path", "path", priority=1, min_width=24, max_width=90, cut="middle"),
]
FILE_SORTS = ["path", "lines", "symbols", "imports", "language", "error"]
FIELDS = {"path": "path", "lang": "language", "language": "language", "status": "status", "error": "error",
          "kind": "kind", "name": "name", "in": "parent"}


def row_matches(row: dict[str, Any], terms: list[str]) -> bool:
    """The ``/`` filter over indexed files."""
    return matches_terms(row, terms, FIELDS)


def file_row(record: dict[str, Any]) -> dict[str, Any]:
    """A file of the index as a table row; the error column says what went wrong, and where."""
    error = record.get("error") or ""
    if record.get("status") == "syntax_error":
        error = f"syntax error, line {record.get('error_line')}: {error}" if record.get("error_line") else \
            f"syntax error: {error}"
    return {**record, "error": error}


def _sort_value(row: dict[str, Any], key: str) -> tuple:
    value = row.get(key)
    if key in ("lines", "symbols", "imports"):
        return (-(value or 0), row.get("path") or "")
    return (str(value or "").lower(), row.get("path") or "")


class AstIndexView(Screen[None]):
    COMMAND_SCOPE = "index"
    BINDINGS = commands.bindings(COMMAND_SCOPE)
    DEFAULT_CSS = """
    AstIndexView #ix-title { height: 1; background: $panel; padding: 0 1; }
    AstIndexView #ix-head { height: auto; max-height: 4; color: $foreground-muted; padding: 0 1; }
    AstIndexView #ix-input { display: none; height: 1; border: none; padding: 0 1; }
    AstIndexView.-input #ix-input { display: block; }
    AstIndexView #ix-symbols { display: none; }
    AstIndexView.-symbols #ix-symbols { display: block; }
    AstIndexView.-symbols #ix-files { display: none; }
    AstIndexView #ix-status { height: 1; color: $foreground-muted; padding: 0 1; }
    """

    def __init__(self, session: Any, run: Any) -> None:
        super().__init__()
        self.session, self.run = session, run
        self.files: list[dict[str, Any]] = []
        self.symbol_rows: list[dict[str, Any]] = []
        self.shown: list[dict[str, Any]] = []
        self.terms: list[str] = []
        self.sort_key = FILE_SORTS[0]
        self.symbols_title = ""          # what the symbol list shows: a file's, or a lookup's
        self.input_mode = "filter"       # or "lookup"
        self.fetching = True
        self.truncated = False
        self.load_worker: Worker | None = None
        self._head_timer: Timer | None = None

    def compose(self):
        yield Static(f"Index of run #{self.run.id}", id="ix-title", markup=False)
        yield Static("loading…", id="ix-head", markup=False)
        yield Input(id="ix-input")
        yield RowTable(FILE_COLUMNS, id="ix-files")
        yield RowTable(SYMBOL_COLUMNS, id="ix-symbols")
        yield Static("loading files…", id="ix-status", markup=False)
        yield KeyBar(self.COMMAND_SCOPE)

    @property
    def in_symbols(self) -> bool:
        return self.has_class("-symbols")

    @property
    def table(self) -> RowTable:
        return self.query_one("#ix-symbols" if self.in_symbols else "#ix-files", RowTable)

    def on_mount(self) -> None:
        self.table.focus()
        self.load_worker = self.run_worker(self._load(), name=f"load the index of run #{self.run.id}",
                                           group="ast-index", exclusive=True, exit_on_error=False)
        if str(self.run.state) in LIVE_STATES:
            # the head follows a run still parsing (files/s per worker, batch sizes, errors)
            self._head_timer = self.set_interval(HEAD_REFRESH_S, self._refresh_head)

    def _refresh_head(self) -> None:
        self.run_worker(self._reload_summary(), name="refresh the index summary", group="ast-index-head",
                        exclusive=True, exit_on_error=False)

    async def _reload_summary(self) -> None:
        summary = await self.session.kind_query(self.run.id, "summary")
        self._show_summary(summary)
        if summary["state"] not in LIVE_STATES and self._head_timer is not None:
            self._head_timer.stop()

    async def _load(self) -> None:
        try:
            summary = await self.session.kind_query(self.run.id, "summary")
            self._show_summary(summary)
            after = ""
            while len(self.files) < MAX_FILES:
                page = await self.session.kind_query(self.run.id, "files", after=after, limit=PAGE)
                self.files.extend(file_row(r) for r in page)
                if len(page) < PAGE:
                    break
                after = page[-1]["path"]
                self.refilter()
            else:
                self.truncated = True
        finally:
            self.fetching = False
            self.refilter()

    def _show_summary(self, s: dict[str, Any]) -> None:
        status = s["by_status"]
        errors = sum(n for k, n in status.items() if k != "ok")
        title = (f"Index of {visible(s['root'])} · run #{self.run.id} ({visible(s['state'])}): "
                 f"{s['files']:,} files, {s['symbols']:,} symbols")
        self.query_one("#ix-title", Static).update(title)
        b = s["batches"]
        head = [f"{s['files_per_s'] or 'n/a'} files/s · CPU efficiency "
                f"{s['cpu_efficiency'] if s['cpu_efficiency'] is not None else 'n/a'} · "
                f"{b['count']:,} batches of {b['min'] or 0}–{b['max'] or 0} files (mean {b['mean'] or 0}; "
                f"latest {', '.join(str(n) for n in b['recent'][-8:]) or 'none'})"]
        if s["workers"]:
            head.append("files/s per worker: " + ", ".join(
                f"pid {w['pid']}: {w['files_per_s']} ({w['files']:,} files)" for w in s["workers"]))
        problems = [f"{errors:,} file(s) with errors (/ status:error lists them)" if errors else "no file errors"]
        if s["failed"]:
            problems.append(f"{len(s['failed']):,} file(s) NOT indexed: "
                            + ", ".join(visible(f["path"]) for f in s["failed"][:3]))
        if s["not_done"]:
            problems.append(f"{s['not_done']:,} file(s) not parsed yet: the index is incomplete")
        elif s["state"] in LIVE_STATES:      # still walking the tree: more files may come
            problems.append(f"run {visible(s['state'])}: the index is incomplete")
        head.append(" · ".join(problems))
        self.query_one("#ix-head", Static).update("\n".join(head))

    # -- what is shown -------------------------------------------------------------------------
    def refilter(self) -> None:
        source = self.symbol_rows if self.in_symbols else self.files
        rows = [r for r in source if row_matches(r, self.terms)] if self.terms else list(source)
        if not self.in_symbols:
            rows.sort(key=lambda r: _sort_value(r, self.sort_key))
        self.shown = rows
        self.table.set_lines(list(rows))
        self._update_status()

    def _update_status(self) -> None:
        source = self.symbol_rows if self.in_symbols else self.files
        count = f"{len(self.shown):,} of {len(source):,}" if self.terms else f"{len(source):,}"
        if self.in_symbols:
            bits = [f"{visible(self.symbols_title)}: {count} row(s)", "esc: back to the files"]
        else:
            bits = [f"{count} file(s)", f"sorted by {self.sort_key}"]
            if self.fetching:
                bits.append("loading…")
            elif not source:
                bits = ["no files in this index"]
            if self.truncated:
                bits.append(f"first {MAX_FILES:,} shown: `batchdeck index DIR --format csv` exports all")
        if self.terms:
            bits.append("filter: " + visible(" ".join(self.terms)) + " (esc clears)")
        self.query_one("#ix-status", Static).update(" · ".join(bits))

    def _selected(self) -> dict[str, Any] | None:
        cursor = self.table.cursor
        return self.shown[cursor] if 0 <= cursor < len(self.shown) else None

    def _show_symbols(self, title: str, rows: list[dict[str, Any]]) -> None:
        self.symbols_title, self.symbol_rows, self.terms = title, rows, []
        self.add_class("-symbols")
        self.table.cursor = 0
        self.table.focus()
        self.refilter()

    async def _open_file(self, path: str) -> None:
        detail = await self.session.kind_query(self.run.id, "file", path=path)
        rows = [{**sym, "path": path} for sym in detail["symbols"]]
        rows += [{"kind": "import", "name": module, "line": None, "parent": "", "path": path}
                 for module in detail["imports"]]
        self._show_symbols(f"symbols and imports of {path}", rows)

    async def _lookup(self, name: str) -> None:
        answer = await self.session.kind_query(self.run.id, "symbol", symbol=name)
        rows = [{**d, "name": name} for d in answer["definitions"]]
        rows += [{"kind": "imported", "name": i["module"], "line": None, "parent": "", "path": i["path"]}
                 for i in answer["importers"]]
        self._show_symbols(f"{name}: defined in {len(answer['definitions'])} place(s), "
                           f"imported by {len(answer['importers'])} file(s)", rows)

    def _work(self, coro: Any, name: str) -> Worker:
        return self.run_worker(coro, name=name, group="ast-index-open", exclusive=True, exit_on_error=False)

    # -- actions ----------------------------------------------------------------------------------
    def _ask(self, mode: str, placeholder: str) -> None:
        self.input_mode = mode
        box = self.query_one("#ix-input", Input)
        box.placeholder = placeholder
        box.value = " ".join(self.terms) if mode == "filter" else ""
        self.add_class("-input")
        box.focus()

    def action_filter(self) -> None:
        self._ask("filter", "filter: words match any column; path:, lang:, status:, error:, kind:, name:")

    def action_lookup(self) -> None:
        row = self._selected() if self.in_symbols else None
        if row is not None and row.get("kind") not in ("import", "imported"):
            self._work(self._lookup(str(row["name"])), "look up a symbol")
            return
        self._ask("lookup", "symbol or module name: where it is defined, which files import it")

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self.input_mode == "filter":
            self.terms = [t for t in event.value.lower().split() if t]
            self.refilter()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.remove_class("-input")
        self.table.focus()
        if self.input_mode == "lookup" and event.value.strip():
            self._work(self._lookup(event.value.strip()), "look up a symbol")

    def action_open_selected(self) -> None:
        row = self._selected()
        if row is not None and row.get("path"):
            self._work(self._open_file(str(row["path"])), "open a file of the index")

    def action_back(self) -> None:
        box = self.query_one("#ix-input", Input)
        if self.has_class("-input") or self.terms:
            self.remove_class("-input")
            box.value = ""
            self.terms = []
            self.refilter()
            self.table.focus()
            return
        if self.in_symbols:
            self.remove_class("-symbols")
            self.table.focus()
            self.refilter()
            return
        self.app.pop_screen()

    def action_sort(self) -> None:
        if self.in_symbols:
            return
        self.sort_key = FILE_SORTS[(FILE_SORTS.index(self.sort_key) + 1) % len(FILE_SORTS)]
        self.refilter()

    def export_rows(self) -> tuple[str, list[dict[str, Any]]]:
        """What ``e`` writes: the rows shown (files, or a file's or a lookup's symbols), as filtered."""
        keys = [c.key for c in (SYMBOL_COLUMNS if self.in_symbols else FILE_COLUMNS)]
        what = "symbols" if self.in_symbols else "files"
        return f"run-{self.run.id}-index-{what}", [{k: r.get(k) for k in keys} for r in self.shown]

    def action_export(self) -> None:
        self.post_message(ExportRequested(*self.export_rows()))


def view(session: Any, run: Any) -> AstIndexView:
    """The ``batchdeck.views`` entry point: the results screen of an ast-index run."""
    return AstIndexView(session, run)
