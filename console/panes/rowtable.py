"""A Line-API table of plain rows: any number of rows, only the visible lines drawn.

Why not ``DataTable``: it builds a row object per row up front and reads str
cells as markup; a run can have 100,000 findings whose paths an attacker
chose. Here rows are plain dicts, every cell is drawn as plain text with
control characters made visible (``engine.safetext.visible``), and only the
lines on screen are rendered.

Columns have priorities: when the terminal is narrow the least important go
first, and the flexible ones (paths, repositories) shrink before the ones that
must stay readable (package names, versions), and paths are cut in the middle,
where the least telling part of a path is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.segment import Segment
from textual.binding import Binding, BindingType
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine.safetext import visible

GAP = 2
SAMPLE_ROWS = 2000      # rows measured for column widths


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    title: str
    priority: int = 5        # lower: kept longer when the terminal is narrow
    min_width: int = 4       # shrinks no further (a package name's min is its whole name, up to max)
    max_width: int = 60
    cut: str = "end"         # "end", "middle" (paths) or "keep" (never shrunk below its natural width)
    right: bool = False


@dataclass(frozen=True, slots=True)
class GroupLine:
    """A heading line in a grouped table (not a row)."""

    text: str


def clip_middle(text: str, width: int) -> str:
    """Cut a path in its middle, keeping the file name whole when it fits: ``packages/…/package-lock.json``."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    head = (width - 1) // 3
    _, slash, name = text.rpartition("/")
    if slash and len(name) + 1 + 3 <= width:
        head = width - 1 - len(name) - 1
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def clip_end(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def cell_text(value: Any) -> str:
    return "" if value is None else visible(value)


def fit_columns(columns: list[Column], natural: dict[str, int], width: int) -> list[tuple[Column, int]]:
    """Which columns show and how wide, for ``width`` cells."""
    shown = sorted(columns, key=lambda c: c.priority)
    widths = {c.key: max(len(c.title), min(c.max_width, natural.get(c.key, 0))) for c in columns}

    def floor(c: Column) -> int:
        if c.cut == "keep":
            return widths[c.key]
        return min(widths[c.key], max(c.min_width, len(c.title)))

    def total(cols: list[Column], size) -> int:
        return sum(size(c) for c in cols) + GAP * (len(cols) - 1)

    while len(shown) > 1 and total(shown, floor) > width:
        shown.pop()                              # the least important goes first
    excess = total(shown, lambda c: widths[c.key]) - width
    for c in sorted(shown, key=lambda c: -c.priority):       # shrink the least important first
        if excess <= 0:
            break
        give = min(excess, widths[c.key] - floor(c))
        widths[c.key] -= give
        excess -= give
    return [(c, widths[c.key]) for c in columns if c in shown]


# Navigation keys belong to a list widget (like any list); they are not commands.
LIST_BINDINGS: list[BindingType] = [
    Binding("up,k", "move(-1)", show=False),
    Binding("down,j", "move(1)", show=False),
    Binding("pageup", "page(-1)", show=False),
    Binding("pagedown", "page(1)", show=False),
    Binding("home", "jump(0)", show=False),
    Binding("end", "jump(-1)", show=False),
]


class RowTable(ScrollView, can_focus=True):
    """Rows (plain dicts) and group headings; a cursor; nothing but the visible lines rendered."""

    COMPONENT_CLASSES = {"row-table--cursor", "row-table--header", "row-table--group"}
    DEFAULT_CSS = """
    RowTable { height: 1fr; background: $surface; scrollbar-size-vertical: 1; }
    RowTable > .row-table--cursor { background: $primary 40%; text-style: bold; }
    RowTable > .row-table--header { color: $foreground-muted; text-style: bold; }
    RowTable > .row-table--group { color: $accent; text-style: bold; }
    """
    BINDINGS: ClassVar[list[BindingType]] = LIST_BINDINGS

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)

    class Highlighted(Message):
        def __init__(self, table: RowTable, index: int) -> None:
            super().__init__()
            self.table, self.index = table, index

    def __init__(self, columns: list[Column], **kw) -> None:
        super().__init__(**kw)
        self.columns = columns
        self.lines: list[dict[str, Any] | GroupLine] = []
        self._layout: list[tuple[Column, int]] = []
        self._layout_width = 0
        self._natural: dict[str, int] = {}

    # -- data --------------------------------------------------------------------------------
    def set_lines(self, lines: list[dict[str, Any] | GroupLine]) -> None:
        self.lines = lines
        natural: dict[str, int] = {}
        for line in lines[:SAMPLE_ROWS]:
            if isinstance(line, dict):
                for c in self.columns:
                    natural[c.key] = max(natural.get(c.key, 0), len(cell_text(line.get(c.key))))
        self._natural = natural
        self._relayout()
        self.virtual_size = Size(self.size.width or 1, len(lines) + 1)    # +1: the header line
        self.set_reactive(RowTable.cursor, min(self.cursor, max(0, len(lines) - 1)))
        self.refresh()

    @property
    def selected(self) -> dict[str, Any] | None:
        if 0 <= self.cursor < len(self.lines):
            line = self.lines[self.cursor]
            return line if isinstance(line, dict) else None
        return None

    @property
    def shown_columns(self) -> list[str]:
        return [c.key for c, _ in self._layout]

    def _relayout(self, width: int | None = None) -> None:
        width = width or self.scrollable_content_region.width or self.size.width or 80
        self._layout_width = width
        self._layout = fit_columns(self.columns, self._natural, max(10, width))

    # -- navigation ------------------------------------------------------------------------------
    def validate_cursor(self, value: int) -> int:
        return max(0, min(value, len(self.lines) - 1)) if self.lines else 0

    def watch_cursor(self, value: int) -> None:
        top = int(self.scroll_offset.y)
        height = max(1, self.scrollable_content_region.height - 1)
        if value < top:
            self.scroll_to(y=value, animate=False, immediate=True)
        elif value >= top + height:
            self.scroll_to(y=value - height + 1, animate=False, immediate=True)
        self.refresh()
        self.post_message(self.Highlighted(self, value))

    def action_move(self, delta: int) -> None:
        self.cursor += delta

    def action_page(self, direction: int) -> None:
        self.cursor += direction * max(1, self.scrollable_content_region.height - 2)

    def action_jump(self, where: int) -> None:
        self.cursor = 0 if where == 0 else len(self.lines) - 1

    async def _on_click(self, event: Click) -> None:   # overrides Widget._on_click: async, as that one is
        if event.y >= 1:
            self.cursor = int(self.scroll_offset.y) + event.y - 1

    # -- rendering --------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if width != self._layout_width:          # resized (or first drawn): fit the columns again
            self._relayout(width)
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("row-table--header")
            text = self._format({c.key: c.title for c in self.columns})
            return Strip([Segment(text, style)]).extend_cell_length(width, base).crop(0, width)
        index = int(self.scroll_offset.y) + y - 1
        if index >= len(self.lines):
            return Strip.blank(width, base)
        line = self.lines[index]
        style = base
        if isinstance(line, GroupLine):
            style = base + self.get_component_rich_style("row-table--group")
            text = clip_end(visible(line.text), width)
        else:
            text = self._format(line)
        if index == self.cursor:
            style = style + self.get_component_rich_style("row-table--cursor")
        return Strip([Segment(text, style)]).extend_cell_length(width, style).crop(0, width)

    def _format(self, row: dict[str, Any]) -> str:
        cells = []
        for column, width in self._layout:
            text = cell_text(row.get(column.key))
            text = clip_middle(text, width) if column.cut == "middle" else clip_end(text, width)
            cells.append(text.rjust(width) if column.right else text.ljust(width))
        return (" " * GAP).join(cells)


def matches_terms(row: dict[str, Any], terms: list[str], fields: dict[str, str],
                  skip: frozenset[str] = frozenset()) -> bool:
    """The ``/`` filter of every results view: each term must match. ``field:word`` looks in
    that field (``fields`` maps the names a user types to row keys); a bare word in any column
    but ``skip`` (case-insensitive)."""
    for term in terms:
        name, sep, word = term.partition(":")
        if sep and name in fields:
            if word not in str(row.get(fields[name]) or "").lower():
                return False
        elif not any(term in str(v).lower() for k, v in row.items() if k not in skip and v is not None):
            return False
    return True
