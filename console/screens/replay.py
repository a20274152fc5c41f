"""The replay dialog: edit concurrency, strategy and retry attempts, then replay.

A replay is a new child run holding copies of the failed items (of one batch,
or of the whole run), usually with a gentler configuration; the dialog starts
from the parent's settings and checks the ranges of the configuration guide
before anything is created, so a typo never produces a half-made run.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from console.commands import STRATEGIES
from console.session import ReplayRequest
from engine.safetext import visible

CONCURRENCY_RANGE = (1, 50)     # batch.concurrency.max_concurrent_requests
RETRY_RANGE = (0, 10)           # batch.performance.retry_attempts


def parse_int(text: str, name: str, lo: int, hi: int) -> int:
    """An integer in [lo, hi] or ValueError with a one-line reason."""
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{name}: {text.strip()!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name}: {value} is outside {lo}..{hi}")
    return value


class ReplayScreen(ModalScreen[ReplayRequest | None]):
    BINDINGS = [
        Binding("escape", "cancel", "back", id="back"),
        Binding("ctrl+s", "submit", "replay"),
    ]

    def __init__(self, run_id: int, batch_id: int | None, failed: int | None, *,
                 concurrency: int, strategy: str, retry_attempts: int,
                 item_ids: tuple[int, ...] = (), chosen_by: str = "") -> None:
        super().__init__(classes="dialog")
        self.run_id, self.batch_id, self.failed = run_id, batch_id, failed
        self.item_ids, self.chosen_by = item_ids, chosen_by
        self.defaults = (concurrency, strategy if strategy in STRATEGIES else "conservative", retry_attempts)

    def compose(self):
        if self.item_ids:
            what = f"what the filter shows in run #{self.run_id}"
        elif self.batch_id:
            what = f"batch #{self.batch_id} of run #{self.run_id}"
        else:
            what = f"every failed item of run #{self.run_id}"
        items = f" ({self.failed:,} failed items)" if self.failed is not None else ""
        concurrency, strategy, retries = self.defaults
        with Vertical(classes="dialog-box"):
            yield Label(f"Replay {what}{items}", classes="dialog-title", markup=False)
            if self.chosen_by:
                yield Static(f"chosen by: {visible(self.chosen_by)}", classes="dialog-body", markup=False)
            yield Static("A child run is created with copies of the failed items and this configuration.",
                         classes="dialog-body")
            with Horizontal(classes="field"):
                yield Label("concurrency (1-50)")
                yield Input(str(concurrency), id="replay-concurrency", type="integer")
            with Horizontal(classes="field"):
                yield Label("strategy")
                yield Select([(s, s) for s in STRATEGIES], value=strategy, allow_blank=False,
                             id="replay-strategy")
            with Horizontal(classes="field"):
                yield Label("retry attempts (0-10)")
                yield Input(str(retries), id="replay-retries", type="integer")
            yield Checkbox("start the replay now and follow it", True, id="replay-start")
            yield Static("", id="replay-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Replay (ctrl+s)", variant="primary", id="replay")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#replay-concurrency", Input).focus()

    def request(self) -> ReplayRequest:
        """The dialog's values, checked; ValueError names the bad field."""
        concurrency = parse_int(self.query_one("#replay-concurrency", Input).value, "concurrency",
                                *CONCURRENCY_RANGE)
        retries = parse_int(self.query_one("#replay-retries", Input).value, "retry attempts", *RETRY_RANGE)
        strategy = str(self.query_one("#replay-strategy", Select).value)
        return ReplayRequest(
            self.run_id, self.batch_id,
            {"max_concurrent_requests": concurrency, "default_strategy": strategy, "retry_attempts": retries},
            self.query_one("#replay-start", Checkbox).value,
            self.item_ids, self.chosen_by,
        )

    def action_submit(self) -> None:
        try:
            request = self.request()
        except ValueError as exc:
            self.query_one("#replay-error", Static).update(str(exc))
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "replay":
            self.action_submit()
        else:
            self.dismiss(None)
