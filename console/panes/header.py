"""The one-line header: which run, how far, how fast, and in which mode.

Ordered by what an operator needs first, so that at 80 columns the part that is
cut off is the least important (strategy, mode).
"""

from __future__ import annotations

from textual.content import Content
from textual.markup import escape
from textual.widgets import Static

from console.panes import fmt
from engine.models import RunSnapshot, RunState

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


def state_markup(state: RunState) -> str:
    return f"[{STATE_STYLE.get(state, '$foreground')}]{STATE_ICON.get(state, '?')} {state.value}[/]"


class RunHeader(Static):
    """Run, kind, state, done/total, rate, ETA (+ concurrency, strategy, mode)."""

    DEFAULT_CSS = """
    RunHeader { height: 1; background: $panel; color: $foreground; padding: 0 1; }
    """

    _shown: str | None = None

    def show(self, snapshot: RunSnapshot | None, *, mode: str, readonly: bool, note: str = "") -> None:
        markup = self.markup(snapshot, mode=mode, readonly=readonly, note=note)
        if markup != self._shown:          # one line, fixed height: never a layout pass
            self._shown = markup
            self.update(Content.from_markup(markup), layout=False)

    @staticmethod
    def markup(snapshot: RunSnapshot | None, *, mode: str, readonly: bool, note: str = "") -> str:
        flags = []
        if readonly:
            flags.append("[$warning b]READ-ONLY[/]")
        flags.append(f"[$foreground-muted]{mode}[/]")
        if note:
            flags.append(f"[$error]{escape(note)}[/]")
        if snapshot is None:
            return "[b]batchdeck[/]  no run attached: pick one in pane 5 (enter)  " + "  ".join(flags)
        run, c = snapshot.run, snapshot.counts
        parts = [
            f"[b]run #{run.id}[/] {run.kind}",
            state_markup(run.state),
            f"[b]{fmt.count(c.finished)}[/]/{fmt.count(c.total)} ({fmt.percent(c.finished, c.total)})",
        ]
        if c.failed:
            parts.append(f"[$error]{fmt.count(c.failed)} failed[/]")
        if run.state in (RunState.RUNNING, RunState.PAUSED):
            parts += [fmt.rate(snapshot.items_per_s),
                      f"ETA {fmt.duration(snapshot.eta_s) if snapshot.eta_s is not None else '—'}"]
        parts += [
            f"conc {snapshot.concurrency}",
            f"batch {snapshot.batch_size}",
        ]
        if snapshot.strategy:
            parts.append(snapshot.strategy)
        if run.parent_id:
            parts.append(f"replay of #{run.parent_id}")
        return "  ".join(parts + flags)
