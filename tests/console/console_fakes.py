"""A hand-made, deterministic run for console tests (snapshots and key tests).

Everything is fixed: timestamps derive from ``NOW`` and the app gets
``clock=lambda: NOW``, so ages, countdowns and charts render the same on every
machine. ``ScriptedSource`` records the commands it receives and applies them
to its snapshot (pause → paused, ``+`` → concurrency), so key tests check what
an operator would see. ``FixedStore`` answers the store queries the panes make.
The real-engine tests live in ``test_engine_keys.py``.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from textual import events

from engine.errors import InputError
from engine.events import EventKind
from engine.kinds import JobKind
from engine.models import (
    BatchState,
    BatchView,
    BreakerTransition,
    BreakerView,
    Counts,
    LaneView,
    MetricSample,
    RateLimitGauge,
    RunInfo,
    RunSnapshot,
    RunState,
)
from engine.source import EngineEvent

NOW = 1_700_000_000.0
RUN_ID = 7


def make_batches(run_id: int = RUN_ID, count: int = 120, size: int = 20) -> list[BatchView]:
    """The run's batches, oldest first; the last three are still running."""
    batches = []
    for i in range(count):
        batch_id = 1000 + i
        started = NOW - (count - i) * 9.0
        # as the engine counts them: size = done + failed + retried (moved on to a later batch) + in flight
        if i >= count - 3:
            state, done, failed, retried, ended = BatchState.RUNNING, size // 2, 0, 1, None
        elif i % 7 == 3:
            state, done, failed, retried, ended = BatchState.PARTIAL, size - 5, 3, 2, started + 8
        elif i % 13 == 5:
            state, done, failed, retried, ended = BatchState.FAILED, 0, size, 0, started + 8
        else:
            state, done, failed, retried, ended = BatchState.DONE, size, 0, 0, started + 8
        batches.append(BatchView(id=batch_id, run_id=run_id, size=size, state=state, done=done, failed=failed,
                                 retried=retried, p95_ms=80.0 + (i * 37) % 400, started_at=started,
                                 ended_at=ended))
    return batches


def make_series(n: int = 90) -> list[MetricSample]:
    samples = []
    for i in range(n):
        errors = {}
        if i % 9 == 4:
            errors["network"] = 2
        if i % 17 == 8:
            errors["rate_limited"] = 3
        if 40 <= i < 46:
            errors["server"] = 4
        samples.append(MetricSample(
            at=NOW - (n - i), items_per_s=30 + (i % 11) * 2 - (8 if 40 <= i < 46 else 0),
            p50_ms=90 + (i % 5) * 6, p95_ms=240 + (i % 13) * 15, batch_size=min(50, 10 + i // 3),
            concurrency=min(20, 4 + i // 6), errors=errors, done=i * 30))
    return samples


def make_snapshot(state: RunState = RunState.RUNNING, kind: str = "ioc-scan") -> RunSnapshot:
    run = RunInfo(id=RUN_ID, kind=kind, state=state, created_at=NOW - 400, started_at=NOW - 390,
                  spec={"org": "acme", "iocs": ["shai-hulud-2-packages.csv"]},
                  config={"batch": {"concurrency": {"max_concurrent_requests": 20},
                                    "strategy": {"default": "adaptive"},
                                    "performance": {"retry_attempts": 3}}},
                  owner_pid=4242, heartbeat_at=NOW - 1)
    counts = Counts(total=10_000, pending=5_650, in_flight=30, done=4_210, failed=96, skipped=14)
    breakers = [
        BreakerView("read", "closed", 0, 5, None),
        BreakerView("search", "open", 5, 5, NOW + 12, [
            BreakerTransition(NOW - 18, "closed", "open", "5 failures in a row (HTTP 502)")]),
        BreakerView("graphql", "half_open", 1, 5, NOW - 1, [
            BreakerTransition(NOW - 95, "closed", "open", "timeouts"),
            BreakerTransition(NOW - 35, "open", "half_open", "recovery timeout elapsed")]),
        BreakerView("write", "closed", 2, 5, None),
    ]
    return RunSnapshot(
        run=run, counts=counts, items_per_s=35.2, eta_s=165.0, concurrency=12, batch_size=20,
        strategy="adaptive", retries=130, api_requests=12_840, api_requests_saved=3_100,
        errors_by_class={"network": 20, "rate_limited": 15, "server": 24},
        rate_limits=[
            RateLimitGauge("core", 5000, 4210, 790, NOW + 2472, 1.2, 0.8),
            RateLimitGauge("search", 30, 7, 23, NOW + 41, 0.4, 0.8),
            RateLimitGauge("graphql", 5000, 1050, 3950, NOW + 1800, 2.5, 0.8),
        ],
        lanes=[
            LaneView("read", in_flight=9),
            LaneView("write", content_budget_per_min=72, in_flight=1),
            LaneView("search", paused_until=NOW + 23, pause_reason="retry-after 60s", in_flight=0),
        ],
        breakers=breakers, recent_batches=make_batches()[-40:], series=make_series(), taken_at=NOW,
    )


def make_events() -> list[EngineEvent]:
    # kinds the engine emits (engine/events.py EventKind); a lane waiting for its breaker is a BREAKER event
    return [
        EngineEvent(NOW - 40, EventKind.BATCH_ENDED, RUN_ID, "batch #1030 done: 20/20 in 7.9s"),
        EngineEvent(NOW - 35, EventKind.BREAKER, RUN_ID, "graphql breaker half-open: probing"),
        EngineEvent(NOW - 23, EventKind.BREAKER, RUN_ID, "search lane paused 60s (secondary limit)"),
        EngineEvent(NOW - 18, EventKind.BREAKER, RUN_ID, "search breaker opened after 5 failures"),
        EngineEvent(NOW - 10, EventKind.CHECKPOINT, RUN_ID, "checkpoint #31 at 4,200 done"),
        EngineEvent(NOW - 4, EventKind.BATCH_ENDED, RUN_ID, "batch #1036 partial: 17 done, 3 failed"),
    ]


class ScriptedSource:
    """A RunSource over a fixed snapshot; commands change what the next snapshot says."""

    def __init__(self, snapshot: RunSnapshot | None = None, events: list[EngineEvent] | None = None,
                 readonly: bool = False) -> None:
        self.current = snapshot or make_snapshot()
        self.run_id = self.current.run.id
        self.readonly = readonly
        self.pending_events = list(events if events is not None else make_events())
        self.calls: list[tuple[str, Any]] = []

    async def snapshot(self) -> RunSnapshot:
        return copy.copy(self.current)

    def drain_events(self, limit: int = 200) -> list[EngineEvent]:
        out, self.pending_events = self.pending_events[:limit], self.pending_events[limit:]
        return out

    def _state(self, state: RunState) -> None:
        self.current = replace(self.current, run=replace(self.current.run, state=state))

    async def pause(self) -> None:
        self.calls.append(("pause", None))
        self._state(RunState.PAUSED)

    async def resume(self) -> None:
        self.calls.append(("resume", None))
        self._state(RunState.RUNNING)

    async def cancel(self) -> None:
        self.calls.append(("cancel", None))
        self._state(RunState.CANCELLED)

    async def set_concurrency(self, n: int) -> None:
        self.calls.append(("set_concurrency", n))
        self.current = replace(self.current, concurrency=n)

    async def set_strategy(self, name: str) -> None:
        self.calls.append(("set_strategy", name))
        self.current = replace(self.current, strategy=name)


class FixedStore:
    """The store queries the panes make, answered from fixed data."""

    def __init__(self) -> None:
        snap = make_snapshot()
        self.runs = [
            replace(snap.run),
            RunInfo(id=6, kind="synthetic", state=RunState.INTERRUPTED, created_at=NOW - 7200,
                    config={"max_concurrent_requests": 8, "default_strategy": "parallel"}),
            RunInfo(id=5, kind="ioc-scan", state=RunState.COMPLETED, created_at=NOW - 86_400 * 2, parent_id=3),
            RunInfo(id=4, kind="ioc-scan", state=RunState.PAUSED, created_at=NOW - 86_400 * 3),
            RunInfo(id=3, kind="ioc-scan", state=RunState.FAILED, created_at=NOW - 86_400 * 4,
                    message="stopped: token rejected (401)"),
        ]
        self.batches = {RUN_ID: make_batches()}
        self.calls: list[tuple[str, Any]] = []

    async def write(self, sql: str, params: tuple) -> int:
        """The audit rows the console writes (engine.audit.record), kept for the test to read."""
        self.calls.append(("write", params))
        return len(self.calls)

    async def list_runs(self, limit: int = 50, before_id: int | None = None) -> list[RunInfo]:
        runs = [r for r in self.runs if before_id is None or r.id < before_id]
        return runs[:limit]

    async def get_run(self, run_id: int) -> RunInfo | None:
        return next((r for r in self.runs if r.id == run_id), None)

    async def counts(self, run_id: int) -> Counts:
        return make_snapshot().counts if run_id == RUN_ID else Counts(total=500, done=480, failed=20)

    async def list_batches(self, run_id: int, limit: int = 50, before_id: int | None = None) -> list[BatchView]:
        rows = sorted(self.batches.get(run_id, []), key=lambda b: -b.id)
        return [b for b in rows if before_id is None or b.id < before_id][:limit]

    async def batch_items(self, run_id: int, batch_id: int, after_id: int = 0, limit: int = 200) -> list[dict]:
        self.calls.append(("batch_items", batch_id))
        rows = []
        for i in range(20):
            item_id = batch_id * 100 + i
            failed = i >= 17
            rows.append({"id": item_id, "seq": batch_id * 20 + i, "key": f"acme/repo-{i:03d}",
                         "state": "failed" if failed else "done", "attempts": 3 if failed else 0,
                         "error_class": "server" if failed else None,
                         "last_error": "HTTP 502 Bad Gateway from /repos/acme/repo/git/trees/main" if failed
                         else None})
        return [r for r in rows if r["id"] > after_id][:limit]

    async def list_checkpoints(self, run_id: int) -> list[dict]:
        return [{"id": 31, "created_at": NOW - 10, "reason": "interval",
                 "counts": {"done": 4200, "failed": 96, "pending": 5704}},
                {"id": 30, "created_at": NOW - 70, "reason": "pause",
                 "counts": {"done": 3800, "failed": 80, "pending": 6120}}]

    async def list_artifacts(self, run_id: int, kind: str | None = None) -> list[dict]:
        rows = [{"id": 12, "batch_id": 1038, "kind": "replay", "created_at": NOW - 5,
                 "summary": "3 failed items (server); recommendation: halve concurrency",
                 "data": {"items": [1, 2, 3], "recommendation": "halve concurrency"}},
                {"id": 11, "batch_id": None, "kind": "task_graph", "created_at": NOW - 390,
                 "summary": "10,000 items", "data": {}}]
        return [r for r in rows if kind is None or r["kind"] == kind]

    async def findings(self, run_id: int, after_id: int = 0, limit: int = 200) -> list[dict]:
        rows = [{"id": i, "repo": f"acme/service-{i}", "file_path": "package-lock.json", "line_number": 100 + i,
                 "package_name": "@ctrl/tinycolor", "version": "4.1.1", "ecosystem": "npm",
                 "ioc_source": "shai-hulud-2-packages.csv", "kind": "lockfile"} for i in range(1, 4)]
        return [r for r in rows if r["id"] > after_id][:limit]


def fixed_kinds(name: str) -> JobKind:
    """Job kinds whose queries the fake stores answer: ioc-scan's ``findings`` reads
    ``FixedStore.findings`` (the real query reads SQLite; ``test_scan_console`` runs it)."""
    if name != "ioc-scan":
        raise InputError(f"unknown job kind {name!r}")

    def findings(store: FixedStore, run_id: int, **kw: Any) -> Awaitable[list[dict]]:
        return store.findings(run_id, **kw)
    return JobKind("ioc-scan", processor=lambda *a: None, queries={"findings": findings})


def fixed_app(theme: str = "dark", *, readonly: bool = False, keymap: dict | None = None,
              source: ScriptedSource | None = None, store: FixedStore | None = None,
              export_dir: Any = None):
    """The console over the hand-made run, with time frozen at ``NOW``."""
    from console.app import BatchdeckApp
    from console.session import ConsoleSession

    session = ConsoleSession(None, store=store or FixedStore(), readonly=readonly, kinds=fixed_kinds)
    return BatchdeckApp(None, source=source or ScriptedSource(), session=session,
                        clock=lambda: NOW, theme=theme, readonly=readonly, keymap=keymap,
                        export_dir=export_dir)


async def settle(pilot, rounds: int = 3) -> None:
    """Let workers (history, details) finish and their messages land."""
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def paste(pilot, text: str) -> None:
    """Paste ``text`` as the terminal delivers it (one Paste event, to the focused widget); then let
    the workers it starts (the palette's search) finish. Typing it key by key makes the palette search
    once a key: about 0.3 s each, seconds for a command's name, and the same hits in the end."""
    pilot.app.post_message(events.Paste(text))
    await settle(pilot)


# -- hostile text: what an attacker's repository (or a bad API day) puts into names and errors --------
ESC_TITLE = "\x1b]0;pwned\x07"
MARKUP_PATH = "[/oops]crash/package-lock.json"
LINK_NAME = "[link=https://evil.example]@ctrl/tinycolor[/link]"


class HostileStore(FixedStore):
    """Findings, runs and items whose text is markup and escape sequences."""

    def __init__(self) -> None:
        super().__init__()
        self.runs[2] = replace(self.runs[2], message=f"[/oops] {ESC_TITLE}stopped [b]")

    async def findings(self, run_id: int, after_id: int = 0, limit: int = 200) -> list[dict]:
        rows = [
            {"id": 1, "repo": f"acme/{ESC_TITLE}api", "file_path": MARKUP_PATH, "line_number": 3,
             "package_name": LINK_NAME, "version": "4.1.1", "ecosystem": "npm", "ioc_source": "[red]x.csv",
             "kind": "locked"},
            {"id": 2, "repo": "acme/web", "file_path": "\x1b[2Jclear/yarn.lock", "line_number": 9,
             "package_name": "left-pad", "version": "[bold]1.3.0", "ecosystem": "npm", "ioc_source": "iocs.csv",
             "kind": "declared"},
        ]
        return [r for r in rows if r["id"] > after_id][:limit]

    async def batch_items(self, run_id: int, batch_id: int, after_id: int = 0, limit: int = 200) -> list[dict]:
        rows = await super().batch_items(run_id, batch_id, after_id, limit)
        for row in rows:
            if row["state"] == "failed":
                row["key"] = f"repo:acme/{ESC_TITLE}[/x]"
                row["last_error"] = f"HTTP 502 [link=https://evil.example]click[/link] {ESC_TITLE}"
        return rows


def hostile_snapshot() -> RunSnapshot:
    snap = make_snapshot()
    breakers = [replace(snap.breakers[1], transitions=[
        BreakerTransition(NOW - 18, "closed", "open", f"[/oops] {ESC_TITLE}")])]
    lanes = [LaneView("search", paused_until=NOW + 23, pause_reason=f"[/x]{ESC_TITLE}")]
    return replace(snap, run=replace(snap.run, message=f"[/m]{ESC_TITLE}"), strategy="[/s]adaptive",
                   breakers=breakers, lanes=lanes,
                   rate_limits=[replace(snap.rate_limits[0], resource=f"[/r]{ESC_TITLE}")])


def hostile_events() -> list[EngineEvent]:
    return [EngineEvent(NOW - 4, EventKind.ERROR, RUN_ID, f"[/oops] {ESC_TITLE} [link=https://evil.example]x[/link]")]
