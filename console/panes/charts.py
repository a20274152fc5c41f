"""Pane 4: metrics charts (plotext via textual-plotext), time on x.

Four charts: throughput, latency p50/p95, batch size and concurrency, errors
by class. Each chart draws itself inside ``render`` from the last snapshot's
series, so it is drawn for the size it has (legends only when there is room)
and only when something changed: the pane refreshes the charts when a new
sample arrives; a theme or size change repaints them anyway; not at every tick
(plotext costs a few milliseconds per chart). Line colours come from the
theme's ``[chart]`` table; background and text from the theme itself.
"""

from __future__ import annotations

from textual.containers import Grid
from textual_plotext import PlotextPlot

from console.themes import chart_colours
from engine.models import MetricSample, RunSnapshot
from engine.safetext import visible

ERROR_SHORT = {
    "rate_limited": "rate", "secondary_limited": "2nd", "network": "net", "timeout": "tmo",
    "server": "5xx", "client": "4xx", "auth": "auth", "unexpected": "other",
}
LEGEND_MIN_WIDTH = 50


def time_axis(series: list[MetricSample]) -> tuple[list[float], str]:
    """Elapsed time since the first sample, in seconds or minutes."""
    start = series[0].at
    span = series[-1].at - start
    if span > 600:
        return [(s.at - start) / 60 for s in series], "elapsed (min)"
    return [s.at - start for s in series], "elapsed (s)"


class RunChart(PlotextPlot):
    """One chart; ``kind`` is throughput, latency, sizing or errors."""

    TITLES = {
        "throughput": "throughput (items/s)",
        "latency": "latency p50 / p95 (ms)",
        "sizing": "batch size / concurrency",
        "errors": "errors by class (per interval)",
    }

    def __init__(self, kind: str, **kw) -> None:
        super().__init__(**kw)
        self.kind = kind
        self.snapshot: RunSnapshot | None = None

    def set_snapshot(self, snapshot: RunSnapshot | None) -> None:
        self.snapshot = snapshot
        self.refresh()

    def render(self):
        self._draw()
        return super().render()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_figure()
        colours = chart_colours(self.app.current_theme.variables)
        roomy = self.size.width >= LEGEND_MIN_WIDTH
        series = self.snapshot.series if self.snapshot else []
        title = self.TITLES[self.kind]
        if not series:
            plt.title(f"{title}: no samples yet")
            plt.xlabel("elapsed (s)")
            return
        xs, xlabel = time_axis(series)
        plt.xlabel(xlabel)

        def line(values, colour, label):
            points = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
            if points:
                plt.plot([p[0] for p in points], [p[1] for p in points], color=colour,
                         marker="braille", label=label if roomy else None)

        if self.kind == "throughput":
            line([s.items_per_s for s in series], colours.throughput, "items/s")
            plt.ylabel("items/s" if roomy else "")
        elif self.kind == "latency":
            line([s.p50_ms for s in series], colours.p50, "p50")
            line([s.p95_ms for s in series], colours.p95, "p95")
            plt.ylabel("ms" if roomy else "")
        elif self.kind == "sizing":
            line([s.batch_size for s in series], colours.batch_size, "batch size")
            line([s.concurrency for s in series], colours.concurrency, "concurrency")
        else:
            classes = sorted({c for s in series for c in s.errors})
            totals = self.snapshot.errors_by_class if self.snapshot else {}
            for i, cls in enumerate(classes):
                line([s.errors.get(cls, 0) for s in series], colours.errors[i % len(colours.errors)],
                     visible(ERROR_SHORT.get(cls, cls)))
            if totals:
                title = "errors: " + " ".join(
                    f"{visible(ERROR_SHORT.get(c, c))} {n}" for c, n in sorted(totals.items(), key=lambda kv: -kv[1]))
            elif not classes:
                title = "errors by class: none"
        plt.title(title if len(title) <= self.size.width - 4 else title[: max(1, self.size.width - 5)] + "…")


class ChartsPane(Grid, can_focus=True):
    ALLOW_MAXIMIZE = True
    DEFAULT_CSS = """
    ChartsPane { grid-size: 2 2; grid-gutter: 0 1; }
    ChartsPane RunChart { height: 1fr; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self._key: tuple | None = None
        self._stale: list[RunChart] = []
        self._latest: RunSnapshot | None = None

    def compose(self):
        for kind in ("throughput", "latency", "sizing", "errors"):
            yield RunChart(kind, id=f"chart-{kind}")

    def apply(self, snapshot: RunSnapshot | None) -> None:
        """Redraw only when the series or the error totals moved on, one chart per tick.

        plotext costs a few milliseconds per chart; drawing all four in the same
        frame is what an operator would feel (and the engine, which shares the
        loop). After the first fill, a new sample marks the charts stale and
        each refresh tick redraws the next stale one, so at 4 Hz every chart is
        at most a second behind and no frame draws more than one.
        """
        series = snapshot.series if snapshot else []
        key = (snapshot.run.id if snapshot else None, len(series), series[-1].at if series else None,
               tuple(sorted(snapshot.errors_by_class.items())) if snapshot else ())
        charts = list(self.query(RunChart))
        if key != self._key:
            first = self._key is None or self._key[0] != key[0]
            self._key = key
            if first:
                for chart in charts:
                    chart.set_snapshot(snapshot)
                self._stale.clear()
                return
            self._stale = self._stale + [c for c in charts if c not in self._stale]
            self._latest = snapshot
        if self._stale:
            self._stale.pop(0).set_snapshot(self._latest)
