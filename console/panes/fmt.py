"""Small text formatters every pane shares (durations, counts, bars).

Kept free of Textual so they are trivially testable and cheap: they run for
every visible line at the refresh rate.
"""

from __future__ import annotations

BAR_FULL = "█"
BAR_EMPTY = "░"


def duration(seconds: float | None) -> str:
    """Compact and stable width: 9s, 4m05s, 2h07m, 3d04h."""
    if seconds is None:
        return "—"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def count(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def rate(per_s: float | None) -> str:
    if per_s is None:
        return "—"
    if per_s >= 100:
        return f"{per_s:,.0f}/s"
    if per_s >= 10:
        return f"{per_s:.1f}/s"
    return f"{per_s:.2f}/s"


def millis(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms >= 10_000:
        return f"{ms / 1000:.0f}s"
    if ms >= 1000:
        return f"{ms / 1000:.1f}s"
    return f"{ms:.0f}ms"


def percent(part: int, whole: int) -> str:
    return "—" if whole <= 0 else f"{100 * part / whole:.0f}%"


def bar_cells(fraction: float, width: int, marker_at: float | None = None) -> tuple[str, str, int | None]:
    """Split a bar of ``width`` cells: (filled, empty, marker index or None).

    The marker (the buffer line) is drawn by the caller at its index, replacing
    whichever cell is there, so the bar's width never changes.
    """
    fraction = min(1.0, max(0.0, fraction))
    filled = int(round(fraction * width))
    marker = None
    if marker_at is not None and width > 1:
        marker = min(width - 1, max(0, int(round(marker_at * width))))
    return BAR_FULL * filled, BAR_EMPTY * (width - filled), marker


def clip(text: str, width: int) -> str:
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"
