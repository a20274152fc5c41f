"""Run metrics: latency windows while running, the performance report after.

The report is computed from SQLite, not from memory, so it is the same
whether the run finished in this process, was resumed three times, or is
being inspected a week later (``batchdeck report RUN``).

Fields (ARCHITECTURE.md §5 plus the seed's BatchMetrics): run id, kind, state,
total/done/failed/skipped/pending, api_requests, api_requests_saved,
rate_limited responses, retries, duration_s (time spent running, pauses
excluded), items_per_s, success_rate, batch sizes, latency p50/p95/p99, error
breakdown by class, parallel efficiency (busy worker time ÷ (duration × mean
concurrency)), checkpoints and replay artifacts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.errors import ErrorClass, InputError
from engine.retry import DEFAULT_POLICIES
from engine.safetext import visible
from engine.sizing import stored_concurrency_ceiling

if TYPE_CHECKING:
    from engine.store import Store


class LatencyWindow:
    """Latencies of the current sampling interval; ``take`` returns p50/p95 and resets.

    Bounded (keeps at most ``cap`` values per interval by striding) so a
    100,000 items/s interval cannot grow it without limit.
    """

    def __init__(self, cap: int = 4096) -> None:
        self.cap = cap
        self.values: list[float] = []
        self.seen = 0

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.cap:
            self.values.append(value)
        elif self.seen % (self.seen // self.cap + 1) == 0:
            self.values[self.seen % self.cap] = value

    def take(self) -> tuple[float | None, float | None]:
        values, self.values, self.seen = sorted(self.values), [], 0
        if not values:
            return None, None
        return round(percentile(values, 50), 3), round(percentile(values, 95), 3)


def percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _percentiles(store: Store, run_id: int, n: int) -> dict[str, float | None]:
    out: dict[str, float | None] = {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    if n == 0:
        return out
    for name, pct in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
        offset = min(n - 1, max(0, round(pct / 100 * (n - 1))))
        value = await store.duration_at(run_id, offset)
        out[name] = round(value, 3) if value is not None else None
    return out


async def build_report(store: Store, run_id: int) -> dict[str, Any]:
    run = await store.require_run(run_id)
    counts = await store.counts(run_id)
    flags = await store.run_flags(run_id)
    stats = flags.get("stats") or {}
    counters = stats.get("counters", {})
    duration = float(flags.get("active_s") or 0.0)
    figures = await store.report_figures(run_id)
    timed, busy_ms = figures.timed_items, figures.busy_ms
    errors, final_errors = figures.errors_by_class, figures.failed_by_class
    concurrencies = figures.concurrency_samples
    mean_conc = sum(concurrencies) / len(concurrencies) if concurrencies else float(
        stored_concurrency_ceiling(run.config))
    finished = counts.done + counts.failed + counts.skipped
    report: dict[str, Any] = {
        "run_id": run.id,
        "kind": run.kind,
        "state": run.state.value,
        "parent_id": run.parent_id,
        "total": counts.total,
        "done": counts.done,
        "failed": counts.failed,
        "skipped": counts.skipped,
        "pending": counts.pending,
        "in_flight": counts.in_flight,
        "api_requests": int(counters.get("api_requests", 0)),
        "api_requests_saved": int(counters.get("api_requests_saved", 0)),
        "rate_limited": int(counters.get("rate_limited", 0)) + int(counters.get("secondary_limited", 0)),
        "retries": int(stats.get("retries", 0)),
        "duration_s": round(duration, 3),
        "items_per_s": round(finished / duration, 3) if duration > 0 else 0.0,
        "success_rate": round(counts.done / finished, 4) if finished else 0.0,
        "batches": {
            "count": figures.batches,
            "mean_size": round(figures.batch_mean, 2),
            "min_size": figures.batch_min,
            "max_size": figures.batch_max,
        },
        "latency": await _percentiles(store, run_id, timed),
        "errors_by_class": errors,
        "failed_by_class": final_errors,
        "parallel_efficiency": round(min(1.0, busy_ms / 1000 / (duration * mean_conc)), 4)
        if duration > 0 and mean_conc > 0 else 0.0,
        "mean_concurrency": round(mean_conc, 2),
        "checkpoints": figures.checkpoints,
        "replay_artifacts": figures.replay_artifacts,
        "counters": counters,
    }
    report["recommendations"] = recommendations(report)
    await _kind_sections(store, run_id, run.kind, report)
    return report


async def _kind_sections(store: Store, run_id: int, kind_name: str, report: dict[str, Any]) -> None:
    """The run's kind's own sections (``JobKind.report``): data under ``sections[key]``, their Markdown
    (titles and text) under ``section_markdown``. A kind no longer installed adds none."""
    from engine.kinds import load_kind

    try:
        kind = load_kind(kind_name)
    except InputError:
        return
    if kind.report is None:
        return
    sections = await kind.report(store, run_id)
    report["sections"] = {s.key: dict(s.data) for s in sections}
    report["section_markdown"] = [{"key": s.key, "title": s.title, "markdown": s.markdown} for s in sections]


def recommendations(report: dict[str, Any]) -> list[str]:
    out = []
    errors = report["errors_by_class"]
    if errors.get("secondary_limited"):
        out.append("secondary limits were hit: lower max_concurrent_requests or use the conservative strategy")
    if errors.get("rate_limited"):
        out.append("primary rate limits were hit: lower rate_limit_buffer")
    if errors.get("timeout", 0) + errors.get("server", 0) > 0.05 * max(1, report["total"]):
        out.append("many timeouts/server errors: smaller batches and fewer concurrent requests")
    out += _failed_advice(report)
    if report["parallel_efficiency"] and report["parallel_efficiency"] < 0.5 and report["total"] > 100:
        out.append("workers were idle half the time: the run was paced by rate limits or the feeder")
    return out


# What to fix when items failed with an error no retry cures: a replay as is would fail them again.
_FIX_FIRST = {
    "client": "the API rejected the requests (4xx: missing or inaccessible repositories, bad input); "
              "fix the input or the access first",
    "auth": "the token was refused; fix the token (`--token`, GITHUB_TOKEN) first",
    "unexpected": "the job raised an unexpected error; inspect them (`batchdeck show {run} --format json`) first",
}


def _failed_advice(report: dict[str, Any]) -> list[str]:
    """Recommend a replay only for the failures a replay can cure (the retry policy's retryable classes)."""
    run = report["run_id"]
    retryable: list[str] = []
    advice = []
    for name, n in sorted(report["failed_by_class"].items()):
        policy = DEFAULT_POLICIES.get(ErrorClass(name)) if name in ErrorClass.__members__.values() else None
        if policy is not None and policy.retryable:
            retryable.append(name)
            continue
        fix = _FIX_FIRST.get(name, _FIX_FIRST["unexpected"]).format(run=run)
        advice.append(f"{n} items failed with {name.replace('_', ' ')} errors, which a replay as is repeats: {fix}")
    if retryable:
        n = sum(report["failed_by_class"][name] for name in retryable)
        where = f" --where 'error={'|'.join(retryable)}'" if advice else ""
        advice.insert(0, f"{n} items failed with retryable errors: `batchdeck replay {run}{where}` retries them")
    return advice


def report_markdown(report: dict[str, Any]) -> str:
    lat = report["latency"]

    def ms(v: float | None) -> str:
        return "–" if v is None else f"{v:.1f} ms"

    lines = [
        f"# batchdeck performance report — run {report['run_id']} ({report['kind']})",
        "",
        f"State: **{report['state']}**" + (f" (replay of run {report['parent_id']})" if report["parent_id"] else ""),
        "",
        "| metric | value |",
        "|---|---|",
        f"| items | {report['total']} total, {report['done']} done, {report['failed']} failed, "
        f"{report['skipped']} skipped, {report['pending']} pending |",
        f"| success rate | {report['success_rate'] * 100:.1f}% |",
        f"| duration | {report['duration_s']:.1f} s |",
        f"| throughput | {report['items_per_s']:.1f} items/s |",
        f"| latency p50 / p95 / p99 | {ms(lat['p50_ms'])} / {ms(lat['p95_ms'])} / {ms(lat['p99_ms'])} |",
        f"| batches | {report['batches']['count']} (mean size {report['batches']['mean_size']}) |",
        f"| API requests | {report['api_requests']} ({report['api_requests_saved']} saved by the ETag cache) |",
        f"| rate-limited responses | {report['rate_limited']} |",
        f"| retries | {report['retries']} |",
        f"| parallel efficiency | {report['parallel_efficiency'] * 100:.0f}% "
        f"(mean concurrency {report['mean_concurrency']}) |",
        f"| checkpoints / replay artifacts | {report['checkpoints']} / {report['replay_artifacts']} |",
        "",
    ]
    if report["errors_by_class"]:
        lines += ["## Errors by class", "", "| class | tries failed | items failed for good |", "|---|---|---|"]
        for cls, n in sorted(report["errors_by_class"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| {cls} | {n} | {report['failed_by_class'].get(cls, 0)} |")
        lines.append("")
    if report["recommendations"]:
        lines += ["## Recommendations", ""] + [f"- {r}" for r in report["recommendations"]] + [""]
    for section in report.get("section_markdown", []):
        lines += [f"## {visible(section['title'])}", "", section["markdown"], ""]
    return "\n".join(lines)
