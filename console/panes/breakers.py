"""Pane 3: circuit breakers per lane, their recent transitions, and the event feed.

Times are shown relative to now (``-12s``, ``in 8s``) from the app's clock: an
operator reads them at a glance, and they do not depend on the time zone.
The event feed keeps the last ``EVENT_LINES`` events drained from the source
(bounded), newest at the bottom like a log.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from textual.containers import Vertical
from textual.content import Content
from textual.widget import Widget

from console.panes import fmt
from engine.events import EventKind
from engine.models import BreakerView, RunSnapshot
from engine.safetext import visible
from engine.source import EngineEvent

EVENT_LINES = 200
STATE_LOOK = {
    "closed": ("$success", "●", "closed"),
    "open": ("$error b", "●", "OPEN"),
    "half_open": ("$warning b", "◐", "half-open"),
}
EVENT_LOOK = {
    EventKind.ERROR: "$error", EventKind.BREAKER: "$warning", EventKind.RUN_STATE: "$accent",
    EventKind.CHECKPOINT: "$primary", EventKind.ARTIFACT: "$primary",
}


def breaker_line(b: BreakerView, now: float) -> Content:
    colour, icon, label = STATE_LOOK.get(b.state, ("$foreground", "?", visible(b.state)))
    if b.next_probe_at is None:
        probe = "—"
    elif b.next_probe_at > now:
        probe = f"in {fmt.duration(b.next_probe_at - now)}"
    else:
        probe = "probing"
    fails = f"{b.failures}/{b.threshold}"
    fail_colour = "$error" if b.failures >= b.threshold else "$warning" if b.failures else "$foreground-muted"
    return Content.assemble(f"{visible(fmt.clip(b.lane, 9)):<10}", (f"{icon} {label:<10}", colour),
                            (f"{fails:>7}", fail_colour), f"   {probe}")


class BreakersView(Widget):
    DEFAULT_CSS = "BreakersView { height: auto; max-height: 75%; text-wrap: nowrap; text-overflow: ellipsis; }"

    def __init__(self, clock: Callable[[], float], **kw) -> None:
        super().__init__(**kw)
        self.clock = clock
        self.snapshot: RunSnapshot | None = None
        self._lines = 0

    def apply(self, snapshot: RunSnapshot | None) -> None:
        lines = self._line_count(snapshot)
        self.snapshot = snapshot
        # Height is auto: a layout pass only when the number of lines changes.
        self.refresh(layout=lines != self._lines)
        self._lines = lines

    @staticmethod
    def _line_count(snapshot: RunSnapshot | None) -> int:
        if snapshot is None or not snapshot.breakers:
            return 1
        transitions = sum(len(b.transitions) for b in snapshot.breakers)
        return 1 + len(snapshot.breakers) + min(3, transitions)

    def render(self) -> Content:
        now = self.clock()
        if self.snapshot is None or not self.snapshot.breakers:
            return Content.styled("no circuit breakers yet", "$foreground-muted")
        lines = [Content.styled(f"{'lane':<10}{'state':<12}{'fails':>7}   next probe", "$foreground-muted b")]
        lines += [breaker_line(b, now) for b in self.snapshot.breakers]
        transitions = sorted(
            ((t, b.lane) for b in self.snapshot.breakers for t in b.transitions),
            key=lambda pair: pair[0].at, reverse=True)[:3]
        for t, lane in transitions:
            to_colour = STATE_LOOK.get(t.to_state, ("$foreground",))[0]
            lines.append(Content.assemble(
                (f"↳{'-' + fmt.duration(now - t.at):>6}", "$foreground-muted"), f" {visible(lane):<9}",
                f"{visible(t.from_state)} → ", (visible(t.to_state), to_colour), "  ",
                (visible(t.reason), "$foreground-muted")))
        return Content("\n").join(lines)


class EventFeed(Widget):
    """The last events, newest last; shows as many as fit."""

    DEFAULT_CSS = """
    EventFeed { height: 1fr; min-height: 2; border-top: hkey $panel-lighten-1;
                text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, clock: Callable[[], float], **kw) -> None:
        super().__init__(**kw)
        self.clock = clock
        self.events: deque[EngineEvent] = deque(maxlen=EVENT_LINES)

    def add(self, events: Iterable[EngineEvent]) -> None:
        before = len(self.events)
        self.events.extend(events)
        if len(self.events) != before or events:
            self.refresh()

    def clear(self) -> None:
        self.events.clear()
        self.refresh()

    def render(self) -> Content:
        now = self.clock()
        height = max(1, self.content_region.height)
        shown = list(self.events)[-height:]
        if not shown:
            return Content.styled("events appear here", "$foreground-muted")
        lines = []
        for e in shown:
            colour = EVENT_LOOK.get(e.kind, "$foreground")
            lines.append(Content.assemble((f"{'-' + fmt.duration(now - e.at):>7}", "$foreground-muted"), " ",
                                          (f"{visible(e.kind):<10}", colour), " ", visible(e.message)))
        return Content("\n").join(lines)


class BreakersPane(Vertical, can_focus=True):
    ALLOW_MAXIMIZE = True

    def __init__(self, clock: Callable[[], float], **kw) -> None:
        super().__init__(**kw)
        self.clock = clock

    def compose(self):
        yield BreakersView(self.clock)
        yield EventFeed(self.clock)

    def apply(self, snapshot: RunSnapshot | None, events: list[EngineEvent]) -> None:
        self.query_one(BreakersView).apply(snapshot)
        feed = self.query_one(EventFeed)
        if events:
            feed.add(events)
        else:
            feed.refresh()   # relative times move on
