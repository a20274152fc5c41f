"""The one-line header: which run, how far, how fast, and in which mode.

Ordered by what an operator needs first, so that at 80 columns the part that is
cut off is the least important (strategy, mode). Built from plain-text parts
(``Content.assemble``), never markup: the run's kind, strategy and error notes
come from the database and the API.

Progress is honest (``engine.progress``): while the total still grows it is
shown as a lower bound with the phases (``repo 120/300 · file 309/1,686+``) and
no percentage or ETA; a paused or stalled run has no ETA.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from console.panes import fmt
from engine.models import RunSnapshot, RunState
from engine.outlook import outlook_text
from engine.progress import eta_text, phases_text, total_known, total_text
from engine.safetext import visible

STATE_STYLE = {
    RunState.RUNNING: "$success",
    RunState.PAUSED: "$warning",
    RunState.INTERRUPTED: "$warning",
    RunState.PENDING: "$foreground-muted",
    RunState.COMPLETED: "$primary",
    RunState.FAILED: "$error",
    RunState.CANCELLED: "$error",
}
STATE_ICON = {
    RunState.RUNNING: "▶", RunState.PAUSED: "⏸", RunState.INTERRUPTED: "⚠",
    RunState.PENDING: "…", RunState.COMPLETED: "✔", RunState.FAILED: "✖", RunState.CANCELLED: "■",
}
COMPLETED_WITH_FAILURES = ("◐", "$warning")


def state_label(state: RunState, failed: int | None = None) -> tuple[str, str]:
    """(text, style) for a run's state; a completed run with failed items is not a ✔."""
    if state is RunState.COMPLETED and failed:
        icon, style = COMPLETED_WITH_FAILURES
        return f"{icon} completed, {failed:,} failed", style
    return f"{STATE_ICON.get(state, '?')} {state.value}", STATE_STYLE.get(state, "$foreground")


def state_content(state: RunState, failed: int | None = None) -> Content:
    return Content.styled(*state_label(state, failed))


def _join(parts: list[str | tuple[str, str] | Content]) -> Content:
    spaced: list[str | tuple[str, str] | Content] = []
    for part in parts:
        if spaced:
            spaced.append("  ")
        spaced.append(part)
    return Content.assemble(*spaced)


class RunHeader(Static):
    """Run, kind, state, done/total with phases, rate, ETA (+ concurrency, strategy, mode)."""

    DEFAULT_CSS = """
    RunHeader { height: 1; background: $panel; color: $foreground; padding: 0 1; }
    """

    _shown: Content | None = None

    def show(self, snapshot: RunSnapshot | None, *, mode: str, readonly: bool, note: str = "") -> None:
        content = self.header_line(snapshot, mode=mode, readonly=readonly, note=note)
        if content != self._shown:          # one line, fixed height: never a layout pass
            self._shown = content
            self.update(content, layout=False)

    @staticmethod
    def header_line(snapshot: RunSnapshot | None, *, mode: str, readonly: bool, note: str = "") -> Content:
        """The header's one line (not named ``content``: that is Static's, what it shows now)."""
        flags: list[str | tuple[str, str] | Content] = []
        if readonly:
            flags.append(("READ-ONLY", "$warning b"))
        flags.append((mode, "$foreground-muted"))
        if note:
            flags.append((visible(note), "$error"))
        if snapshot is None:
            return _join([("batchdeck", "b"), "no run attached: pick one in pane 5 (enter)", *flags])
        run, c = snapshot.run, snapshot.counts
        parts: list[str | tuple[str, str] | Content] = [
            Content.assemble((f"run #{run.id}", "b"), " ", visible(run.kind)),
            state_content(run.state, c.failed if run.state is RunState.COMPLETED else None),
            (total_text(snapshot), "b"),
        ]
        if c.failed and run.state is not RunState.COMPLETED:
            parts.append((f"{c.failed:,} failed", "$error"))
        if "findings" in snapshot.counters:
            found = snapshot.counters["findings"]
            parts.append((f"{found:,} finding{'s' if found != 1 else ''} (f)", "$error b" if found else ""))
        if run.state in (RunState.RUNNING, RunState.PAUSED):
            parts.append(fmt.rate(snapshot.items_per_s))
            if total_known(snapshot) or run.state is RunState.PAUSED:   # else the total says "still discovering"
                parts.append(eta_text(snapshot))
        phases = phases_text(snapshot)
        if phases:
            parts.append((phases, "$foreground-muted"))
        if run.state in (RunState.RUNNING, RunState.PAUSED):    # live settings: only while it runs
            parts += [f"concurrency {snapshot.concurrency} now", f"batch {snapshot.batch_size}"]
            if snapshot.strategy:
                parts.append(visible(snapshot.strategy))
        if run.parent_id:
            parts.append(f"replay of #{run.parent_id}")
        if run.state in (RunState.RUNNING, RunState.PAUSED) and (budget := outlook_text(snapshot)):
            parts.append((budget, "$warning"))   # last: long, and the live settings must stay in view
        return _join(parts + flags)
