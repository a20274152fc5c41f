"""How long something takes, for people: the one formatter of durations the engine's
progress lines, the budget outlook and the console share."""

from __future__ import annotations

DAY_S = 24 * 3600


def duration(seconds: float) -> str:
    """9s, 4m05s, 2h07m, and at most ``> 1 day``."""
    s = max(0, int(round(min(seconds, DAY_S + 1))))
    if s > DAY_S:
        return "> 1 day"
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
