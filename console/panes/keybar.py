"""The main screen's key bar: the footer, drawn from the command table.

Why not Textual's ``Footer``: it rebuilds its widgets whenever the focused
widget changes (every digit key, every click), which costs tens of
milliseconds on the event loop the engine shares. This bar is one line of
text, built from ``console.commands`` (so the keymap applies) and redrawn only
when the keymap, the read-only flag or the width changes. Run-changing
commands are dimmed in a read-only console. A click on a key runs it.
"""

from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.content import Content
from textual.markup import escape
from textual.widget import Widget

from console.commands import COMMANDS, in_scope, keys_of


class KeyBar(Widget):
    DEFAULT_CSS = """
    KeyBar { height: 1; background: $panel; color: $foreground; text-wrap: nowrap; text-overflow: clip; }
    """

    def __init__(self, scope: str = "main", **kw) -> None:
        super().__init__(**kw)
        self.scope = scope             # which screen's commands (console.commands.Command.screens)
        self.spans: list[tuple[int, int, str]] = []     # (start, end, action) for clicks

    def entries(self) -> list[tuple[str, str, str, bool]]:
        """(keys as shown, label, action, enabled) in table order, groups folded into one entry."""
        app = self.app
        keymap = getattr(app, "keymap", {}) or {}
        readonly = bool(getattr(app, "readonly", False))
        out: list[tuple[str, str, str, bool]] = []
        seen_groups: dict[str, int] = {}
        for c in COMMANDS:
            if not in_scope(c, self.scope) or (self.scope == "main" and not c.footer):
                continue
            if c.key_display and c.id not in keymap:
                shown = c.key_display
            else:
                shown = "/".join(app.get_key_display(Binding(k, "")) for k in keys_of(c, keymap))
            enabled = not (readonly and c.changes_run)
            group = c.footer_group.description if c.footer_group else None
            if group is not None and group in seen_groups:
                index = seen_groups[group]
                keys, label, action, was = out[index]
                out[index] = (keys + shown, label, action, was and enabled)
                continue
            if group is not None:
                seen_groups[group] = len(out)
            out.append((shown, group or c.title, c.action, enabled))
        return out

    def render(self) -> Content:
        parts, spans, x = [], [], 0
        for keys, label, action, enabled in self.entries():
            text = f" {keys} {label} "
            key_style = "$accent b" if enabled else "$foreground-muted"
            label_style = "$foreground" if enabled else "$foreground-muted strike"
            parts.append(f"[{key_style}] {escape(keys)}[/][{label_style}] {escape(label)} [/]")
            spans.append((x, x + len(text), action))
            x += len(text)
        self.spans = spans
        return Content.from_markup("".join(parts))

    async def _on_click(self, event: events.Click) -> None:
        for start, end, action in self.spans:
            if start <= event.x < end:
                await self.screen.run_action(action)
                return
