"""The ``?`` screen: every key, from the same table as the footer and the palette.

Keys are shown as the user's keymap has them, so a remapped key is documented
where the user looks for it.
"""

from __future__ import annotations

from itertools import groupby

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from console.commands import help_rows


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", "back", id="back"),
        Binding("question_mark", "close", "help", id="help"),
        Binding("q", "close", show=False),
    ]

    def __init__(self, readonly: bool) -> None:
        super().__init__(classes="dialog")
        self.readonly = readonly

    def compose(self):
        app = self.app
        keymap = getattr(app, "keymap", {}) or {}
        table: DataTable[str | Text] = DataTable(id="help-keys", cursor_type="none", zebra_stripes=True, show_header=False)
        table.add_columns("key", "what", "note")
        for group, members in groupby(help_rows(keymap, lambda key: app.get_key_display(Binding(key, ""))),
                                      key=lambda r: r[0]):
            table.add_row(Text(group, style="bold"), "", "")
            for _, shown, text, command in members:
                note = "off: read-only" if self.readonly and command.changes_run else ""
                table.add_row(Text(shown, style="bold", justify="right"), text, note)
        table.add_row(Text("Lists", style="bold"), "", "")
        table.add_row(Text("↑ ↓ j k", style="bold", justify="right"),
                      "move the selection · PgUp PgDn Home End jump · tab: next widget", "")
        with Vertical(classes="dialog-box help-box"):
            yield Label("batchdeck keys  (esc or ? closes)", classes="dialog-title")
            yield table

    def action_close(self) -> None:
        self.dismiss(None)
