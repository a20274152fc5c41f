"""The one table of console commands, and everything derived from it.

Why one table: the footer, the ``?`` help screen, the ``:`` command palette and
the user's keymap (``console.keymap`` in the config file: binding id -> key)
must never disagree about what a key does. Each :class:`Command` is declared
once here; :func:`bindings` turns the table into Textual ``Binding`` objects
(whose ``id`` is the command id, so ``App.set_keymap`` remaps them),
:func:`help_rows` feeds the help screen, and :class:`CommandsProvider` feeds the
palette. Commands that change a run are marked ``changes_run`` so that
``--readonly`` can refuse them in one place (``MainScreen.guard``) and say so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial

from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider

from engine.errors import InputError

STRATEGIES = ("sequential", "parallel", "adaptive", "aggressive", "conservative")

_PANE_KEYS = Binding.Group("panes", compact=True)
_CONCURRENCY_KEYS = Binding.Group("conc", compact=True)


@dataclass(frozen=True, slots=True)
class Command:
    id: str                  # binding id: the name users remap in console.keymap
    keys: str                # default keys, Textual key names, comma separated
    action: str              # action on the main screen (``action_<name>``)
    title: str               # short label: footer and palette
    help: str                # one line for the help screen and the palette
    group: str               # heading on the help screen
    footer: bool = True
    changes_run: bool = False
    palette: bool = True     # offered in the command palette
    key_display: str | None = None
    footer_group: Binding.Group | None = None
    screens: tuple[str, ...] = ("main",)   # where the key works: main, results (a kind's view), items, audit


COMMANDS: tuple[Command, ...] = (
    # First so that the footer always shows it, however narrow the terminal.
    Command("help", "question_mark", "help", "help", "Show every key", "Console", key_display="?"),
    # -- the run -----------------------------------------------------------
    Command("pause_resume", "space,p", "pause_resume", "pause",
            "Pause the run (in-flight items finish, a checkpoint is written) or resume it",
            "Run", changes_run=True, key_display="␣/p"),
    Command("concurrency_up", "plus", "concurrency(1)", "conc+",
            "Raise the run's concurrency by one", "Run", changes_run=True, key_display="+",
            footer_group=_CONCURRENCY_KEYS),
    Command("concurrency_down", "minus", "concurrency(-1)", "conc-",
            "Lower the run's concurrency by one", "Run", changes_run=True, key_display="-",
            footer_group=_CONCURRENCY_KEYS),
    Command("strategy", "s", "cycle_strategy", "strategy",
            "Switch to the next batch strategy (the palette picks one by name)", "Run",
            changes_run=True),
    Command("replay", "R", "replay", "replay",
            "Replay failed items as a child run: the selected batch, or all the filter shows (count first)",
            "Run", changes_run=True, screens=("main", "items")),
    Command("resume_run", "r", "resume_run", "resume run",
            "Resume the run selected in the browser (paused or interrupted) in this process",
            "Run", changes_run=True, footer=False),
    Command("cancel", "c", "cancel", "cancel",
            "Cancel the run (asks first; the run cannot be resumed)", "Run", changes_run=True),
    Command("export", "e", "export", "export",
            "Export what the view shows (batches, items, results, events, runs; filtered) to CSV or JSON",
            "View", screens=("main", "results", "items", "audit", "index")),
    Command("report", "E", "report", "report",
            "Write the run's performance report (Markdown or JSON) to a file", "Run", footer=False),
    # -- looking around -------------------------------------------------------
    Command("open", "enter", "open_selected", "open",
            "Open the selection: a batch's items and errors, or follow the selected run",
            "View", footer=False, palette=False, screens=("main", "index")),
    Command("filter", "slash", "filter", "filter",
            "Filter the list: batches (state, #id, 'err'), items (state, error), results (any column)", "View",
            key_display="/", screens=("main", "results", "items", "index")),
    # The view comes from the run's job kind (batchdeck.views): a scan's findings, a sync's issues...
    Command("results", "f", "results", "results",
            "Show the run's results in the view its job kind brings (an ioc-scan's findings...)", "View"),
    # Not in the main footer: at 120 columns it would push `: commands` and `q quit` off the bar.
    Command("audit", "a", "audit", "audit",
            "Show the run's audit log: who changed it, when and from where (CLI, console, signal)",
            "View", footer=False),
    Command("sort", "s", "sort", "sort", "Results: sort by the next column", "View",
            screens=("results", "index")),
    Command("lookup", "l", "lookup", "lookup",
            "Index: where a symbol is defined and which files import it (the selected symbol, or a name you type)",
            "View", screens=("index",)),
    Command("group", "g", "group", "group", "Results: group by the view's grouping columns in turn, then not",
            "View", screens=("results",)),
    Command("zoom", "z", "zoom", "zoom", "Show the focused pane full screen (again to restore)",
            "View", footer=False),
    Command("pane_1", "1", "show_pane(1)", "batches", "Focus pane 1: batch queue", "View",
            footer_group=_PANE_KEYS),
    Command("pane_2", "2", "show_pane(2)", "limits", "Focus pane 2: rate limits", "View",
            footer_group=_PANE_KEYS),
    Command("pane_3", "3", "show_pane(3)", "breakers", "Focus pane 3: circuit breakers and events",
            "View", footer_group=_PANE_KEYS),
    Command("pane_4", "4", "show_pane(4)", "charts", "Focus pane 4: metrics charts", "View",
            footer_group=_PANE_KEYS),
    Command("pane_5", "5", "show_pane(5)", "runs", "Focus pane 5: runs, checkpoints and replays",
            "View", footer_group=_PANE_KEYS),
    Command("theme", "t", "cycle_theme", "theme", "Switch to the next theme", "View", footer=False),
    # -- the console ----------------------------------------------------------
    Command("palette", "colon", "app.command_palette", "commands", "Open the command palette",
            "Console", key_display=":", palette=False),
    Command("back", "escape", "back", "back",
            "Back out: close the filter, restore a zoomed pane, leave a list", "Console", footer=False,
            palette=False, screens=("main", "results", "items", "audit", "index")),
    Command("quit", "q", "quit", "quit",
            "Quit (asks while a run of this console is running; it is paused and checkpointed first)",
            "Console"),
)

BY_ID: dict[str, Command] = {c.id: c for c in COMMANDS}
# Binding ids that were renamed: a keymap written for an older batchdeck keeps working.
RENAMED_IDS = {"findings": "results"}
# Key scopes that were renamed: a kind's view written for the "findings" scope keeps its keys.
RENAMED_SCOPES = {"findings": "results"}


def in_scope(command: Command, scope: str) -> bool:
    """Whether ``command`` works on a screen of ``scope`` (main, results, items, audit...)."""
    return RENAMED_SCOPES.get(scope, scope) in command.screens
GROUP_ORDER = ("Run", "View", "Console")


def bindings(screen: str = "main") -> list[BindingType]:
    """The table as Textual bindings for one screen (ids are the command ids).

    Typed as what ``BINDINGS`` holds (a list is invariant), so ``BINDINGS = bindings(scope)``
    type-checks in any screen."""
    return [
        Binding(c.keys, c.action, c.title, show=c.footer or screen != "main", key_display=c.key_display,
                id=c.id, tooltip=c.help, group=c.footer_group)
        for c in COMMANDS if in_scope(c, screen)
    ]


def validate_keymap(keymap: Mapping[str, str] | None, source: str = "console.keymap") -> dict[str, str]:
    """Check a keymap (binding id -> keys) against the table; one-line errors."""
    if not keymap:
        return {}
    out: dict[str, str] = {}
    for binding_id, keys in keymap.items():
        binding_id = RENAMED_IDS.get(binding_id, binding_id)
        if binding_id not in BY_ID:
            known = ", ".join(sorted(BY_ID))
            raise InputError(f"{source}.{binding_id}: unknown binding id (known: {known})")
        if not isinstance(keys, str) or not keys.strip():
            raise InputError(f"{source}.{binding_id}: {keys!r} is not a key (e.g. 'ctrl+p' or 'x,y')")
        out[binding_id] = keys.strip()
    return out


def keys_of(command: Command, keymap: Mapping[str, str]) -> list[str]:
    """The keys that trigger a command once the user's keymap applies."""
    return [k.strip() for k in keymap.get(command.id, command.keys).split(",")]


def help_rows(keymap: Mapping[str, str], key_display) -> Iterable[tuple[str, str, str, Command]]:
    """(group, keys as shown, help text, command) for every command, in table order.

    ``key_display`` turns a Textual key name into what the user presses (the
    App's ``get_key_display`` via a Binding), so remapped keys show as remapped.
    """
    for c in sorted(COMMANDS, key=lambda c: GROUP_ORDER.index(c.group)):
        if c.key_display and c.id not in keymap:
            shown = c.key_display
        else:
            shown = " / ".join(key_display(k) for k in keys_of(c, keymap))
        yield c.group, shown, c.help, c


def markdown_table(keymap: Mapping[str, str] | None = None) -> str:
    """The key table as Markdown (for the README), from the same rows as the help screen."""
    def show(key: str) -> str:
        return {"space": "space", "plus": "+", "minus": "-", "slash": "/", "colon": ":",
                "question_mark": "?", "escape": "esc", "enter": "enter"}.get(key, key)
    lines = ["| key | what it does | changes the run |", "| --- | --- | --- |"]
    for _group, shown, text, c in help_rows(keymap or {}, show):
        shown = shown.replace("␣", "space")
        lines.append(f"| `{shown}` | {text.replace('|', chr(92) + '|')} | {'yes' if c.changes_run else ''} |")
    return "\n".join(lines)


class CommandsProvider(Provider):
    """The command palette, fed by the same table, plus pick-by-name entries.

    Choosing a command runs the same action its key runs, on the screen the
    palette was opened from, so readonly checks and errors behave the same.
    """

    def _entries(self) -> list[tuple[str, str, str]]:
        """(title, help, action) for everything the palette offers."""
        app = self.app
        keymap = getattr(app, "keymap", {}) or {}
        entries: list[tuple[str, str, str]] = []
        scope = getattr(self.screen, "COMMAND_SCOPE", "main")
        for group, shown, text, c in help_rows(keymap, _key_display(app)):
            if c.palette and in_scope(c, scope):
                # No square brackets: the palette reads titles as markup.
                entries.append((f"{c.help.split(' (')[0]}  ({shown})", f"{group}: {text}", c.action))
        if scope != "main":
            return entries
        for name in STRATEGIES:
            entries.append((f"Strategy: {name}", "Run: switch the run to this batch strategy",
                            f"set_strategy('{name}')"))
        for name in getattr(app, "theme_cycle", ()):
            entries.append((f"Theme: {name}", "View: switch to this theme", f"set_theme('{name}')"))
        return entries

    def _run(self, action: str) -> None:
        self.app.call_later(self.screen.run_action, action)

    async def discover(self) -> Hits:
        for title, text, action in self._entries():
            yield DiscoveryHit(title, partial(self._run, action), help=text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, text, action in self._entries():
            score = max(matcher.match(title), matcher.match(text) * 0.5)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self._run, action), text=title, help=text)


def _key_display(app):
    def show(key: str) -> str:
        return app.get_key_display(Binding(key, ""))
    return show
