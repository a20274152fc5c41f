"""What the rate-limit budget means for the rest of a run: windows, next reset, ETA with the waits.

One line for the headless progress and the console's status line, from a
:class:`~engine.models.RunSnapshot` alone (so a run another process executes
shows it too, when its snapshot carries the client's buckets):

    core: 3 windows, next reset 14:05:12 UTC (in 41m00s), ETA 1h12m with 41m waiting

How many requests remain is estimated from the run so far: requests sent per
finished item, times the items left. A job whose items spawn items (ioc-scan:
repos, then files) knows no better until it has fetched them, so while the
total still grows the count is marked as a rough one (``~2 windows``) and no
ETA is claimed. The remaining requests are shared between the buckets in proportion
to what each has spent in its window, and each bucket's outlook is
:func:`engine.github.ratelimit.budget_outlook` at the run's own request rate;
the line shows the bucket that needs the most waiting.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from engine.github.ratelimit import BudgetOutlook, budget_outlook
from engine.models import RateLimitGauge, RunSnapshot, RunState
from engine.safetext import visible
from engine.timefmt import duration

DEFAULT_WINDOW_S = 3600.0


def requests_left(snap: RunSnapshot) -> int | None:
    """The requests the rest of the run needs, estimated from its requests per finished item."""
    finished = snap.counts.finished
    if finished <= 0 or snap.api_requests <= 0:
        return None
    left = snap.counts.pending + snap.counts.in_flight
    return math.ceil(left * snap.api_requests / finished)


def bucket_outlooks(snap: RunSnapshot) -> list[tuple[RateLimitGauge, BudgetOutlook]]:
    """Each tracked bucket's outlook for its share of the requests left."""
    requests = requests_left(snap)
    gauges = [g for g in snap.rate_limits if g.limit > 0]
    if requests is None or not gauges:
        return []
    spent = sum(g.used for g in gauges)
    per_item_rate = snap.api_requests / max(1, snap.counts.finished)
    rate = snap.items_per_s * per_item_rate            # the run's own requests per second
    out = []
    for gauge in gauges:
        share = gauge.used / spent if spent else 1 / len(gauges)
        budget = max(1, math.floor(gauge.buffer * gauge.limit + 1e-9))
        live = gauge.reset_at > snap.taken_at
        left = max(0, budget - gauge.used) if live else budget
        window_s = gauge.window_s or DEFAULT_WINDOW_S
        out.append((gauge, budget_outlook(
            math.ceil(requests * share), budget_left=left, budget_per_window=budget, now=snap.taken_at,
            reset_at=gauge.reset_at if live else None, window_s=window_s,
            rate_per_s=rate * share if rate > 0 else math.inf)))
    return out


def outlook_text(snap: RunSnapshot) -> str:
    """The line (see the module docstring); empty when the rest of the run fits in the budget it
    has (no wait for a reset ahead), when the run is over, or when nothing is known yet."""
    if snap.run.state not in (RunState.RUNNING, RunState.PAUSED):
        return ""
    outlooks = bucket_outlooks(snap)
    if not outlooks:
        return ""
    gauge, outlook = max(outlooks, key=lambda pair: (pair[1].resets, pair[1].wait_s, pair[1].eta_s))
    if outlook.resets == 0:
        return ""       # the rest fits in the budget: the run's own ETA says it all
    exact = snap.total_known
    reset = outlook.next_reset_at
    windows = outlook.resets + 1 if reset is not None else max(1, outlook.windows)
    bits = [f"{visible(gauge.resource)}: {'' if exact else '~'}{windows} window{'s' if windows != 1 else ''}"]
    if reset is not None:
        bits.append(f"next reset {datetime.fromtimestamp(reset, UTC).strftime('%H:%M:%S')} UTC "
                    f"(in {duration(reset - snap.taken_at)})")
    if exact and snap.run.state is RunState.RUNNING and snap.items_per_s > 0:
        eta = f"ETA {duration(outlook.eta_s)}"
        bits.append(eta + (f" with {duration(outlook.wait_s)} waiting" if outlook.resets else ""))
    return ", ".join(bits)
