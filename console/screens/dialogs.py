"""Small modal dialogs: confirm a destructive action, pick where to export a report.

Their keys are local to the dialog and shown on it. Where a dialog key means
the same as a console command (``escape`` backs out), the binding carries the
command's id so a user's keymap moves it too.
"""

from __future__ import annotations

from pathlib import Path

from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no; ``y``/``enter`` confirm, ``n``/``escape`` decline."""

    BINDINGS = [
        Binding("y", "answer(True)", "yes"),
        Binding("n", "answer(False)", "no"),
        Binding("escape", "answer(False)", "back", id="back"),
    ]

    def __init__(self, title: str, detail: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__(classes="dialog")
        self.title_text, self.detail, self.yes, self.no = title, detail, yes, no

    def compose(self):
        with Vertical(classes="dialog-box"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.detail, classes="dialog-body", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button(f"{self.no} (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class ExportScreen(ModalScreen[Path | None]):
    """Where to write an export; the suffix picks the format (the hint says which)."""

    BINDINGS = [Binding("escape", "cancel", "back", id="back")]

    def __init__(self, title: str, default: Path,
                 hint: str = "File to write (.md for Markdown, .json for JSON); enter writes it.") -> None:
        super().__init__(classes="dialog")
        self.title_text, self.default, self.hint = title, default, hint

    def compose(self):
        with Vertical(classes="dialog-box"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            yield Static(self.hint, classes="dialog-body", markup=False)
            yield Input(str(self.default), id="export-path")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Export (enter)", variant="primary", id="export")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _submit(self) -> None:
        text = self.query_one(Input).value.strip()
        if not text:
            self.notify("give a file name", severity="warning")
            return
        self.dismiss(Path(text).expanduser())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "export":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
