"""Pane 2: rate-limit gauges, the write lane's budget and secondary-limit pauses.

One line per primary bucket: a bar of what remains, with ``│`` at the buffer
line (the floor the run will not spend below: ``limit × (1 - buffer)``), the
numbers, the reset countdown and the pace the client holds. The bar turns
yellow near the floor and red under it, which is what an operator watches for.
Rendered at the widget's current width, so the bars use the room there is.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.content import Content
from textual.widget import Widget

from console.panes import fmt
from engine.models import LaneView, RateLimitGauge, RunSnapshot
from engine.safetext import visible

LABEL_WIDTH = 8


def gauge_colour(gauge: RateLimitGauge) -> str:
    if gauge.limit <= 0:
        return "$foreground-muted"
    fraction = gauge.remaining / gauge.limit
    floor = 1.0 - gauge.buffer
    if fraction <= floor:
        return "$error"
    if fraction <= floor + 0.15:
        return "$warning"
    return "$success"


def bar_content(fraction: float, width: int, marker_at: float | None, colour: str) -> Content:
    """A bar of ``width`` cells, the buffer marker drawn over its cell."""
    filled, empty, marker = fmt.bar_cells(fraction, width, marker_at)
    cells = [(ch, colour) for ch in filled] + [(ch, "$foreground-muted") for ch in empty]
    if marker is not None:
        cells[marker] = ("│", "$accent b")
    runs: list[tuple[str, str]] = []
    for ch, style in cells:
        if runs and runs[-1][1] == style:
            runs[-1] = (runs[-1][0] + ch, style)
        else:
            runs.append((ch, style))
    return Content.assemble(*runs)


def gauge_line(gauge: RateLimitGauge, width: int, now: float) -> Content:
    numbers = f" {gauge.remaining:>6,}/{gauge.limit:<6,}"
    tail = f" ↻{fmt.duration(gauge.reset_at - now):>6}"
    tail += f"  pace {fmt.rate(gauge.pace_per_s)}" if gauge.pace_per_s is not None else "  pace —"
    bar_width = max(6, width - LABEL_WIDTH - len(numbers) - len(tail))
    fraction = gauge.remaining / gauge.limit if gauge.limit else 0.0
    bar = bar_content(fraction, bar_width, 1.0 - gauge.buffer, gauge_colour(gauge))
    label = f"{visible(fmt.clip(gauge.resource, LABEL_WIDTH - 1)):<{LABEL_WIDTH}}"
    return Content.assemble((label, "b"), bar, numbers, (tail, "$foreground-muted"))


def lane_line(lane: LaneView, now: float) -> Content | None:
    bits: list[Content] = []
    if lane.paused_until is not None and lane.paused_until > now:
        reason = f" ({visible(lane.pause_reason)})" if lane.pause_reason else ""
        bits.append(Content.assemble((f"⏸ paused {fmt.duration(lane.paused_until - now)}", "$error b"),
                                     f" by a secondary limit{reason}"))
    if lane.content_budget_per_min is not None:
        bits.append(Content(f"content budget {lane.content_budget_per_min:.0f}/min"))
    if not bits:
        return None
    if lane.in_flight:
        bits.append(Content(f"{lane.in_flight} in flight"))
    return Content.assemble((f"{visible(lane.name)} lane", "b"), "  ", Content(" · ").join(bits))


class RateLimitPane(Widget, can_focus=True):
    ALLOW_MAXIMIZE = True
    DEFAULT_CSS = """
    RateLimitPane { height: 1fr; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, clock: Callable[[], float], **kw) -> None:
        super().__init__(**kw)
        self.clock = clock
        self.snapshot: RunSnapshot | None = None

    def apply(self, snapshot: RunSnapshot | None) -> None:
        self.snapshot = snapshot
        self.refresh()

    def render(self) -> Content:
        snap, now = self.snapshot, self.clock()
        width = max(30, self.content_region.width)
        if snap is None or (not snap.rate_limits and not snap.lanes):
            return Content.styled("no rate-limit data yet (appears once the run talks to the API)",
                                  "$foreground-muted")
        lines = [gauge_line(g, width, now) for g in snap.rate_limits]
        if snap.rate_limits:
            buffer = snap.rate_limits[0].buffer
            lines.append(Content.styled(f"│ buffer line: the run spends at most {buffer:.0%} of each bucket",
                                        "$foreground-muted"))
        lane_lines = [line for lane in snap.lanes if (line := lane_line(lane, now))]
        lines += lane_lines or [Content.styled("lanes: no pause, no write budget in use", "$foreground-muted")]
        return Content("\n").join(lines)
