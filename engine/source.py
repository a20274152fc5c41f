"""What the console (or any observer) reads a run through.

Two implementations share this protocol: ``LiveRunSource`` wraps an engine
running in this process; ``DbRunSource`` rebuilds the same snapshot from SQLite
for a run that another process executes, and sends its commands through the
``control`` table. The console cannot tell them apart, which is the point.
"""

from __future__ import annotations

import time
from typing import Any, Protocol, runtime_checkable

from engine.events import ControlCommand, EngineEvent, EventKind
from engine.models import Counts, RunSnapshot


@runtime_checkable
class RunSource(Protocol):
    run_id: int
    readonly: bool

    async def snapshot(self) -> RunSnapshot:
        """The run now. Cheap enough to call at 4 Hz with 100k items."""
        ...

    def drain_events(self, limit: int = 200) -> list[EngineEvent]:
        """Events since the last call (bounded: old ones are dropped first)."""
        ...

    async def pause(self) -> None: ...
    async def resume(self) -> None: ...
    async def cancel(self) -> None: ...
    async def set_concurrency(self, n: int) -> None: ...
    async def set_strategy(self, name: str) -> None: ...


__all__ = ["DbRunSource", "EngineEvent", "LiveRunSource", "RunSource"]   # EngineEvent: engine/events.py


class LiveRunSource:
    """A run executing in this process: the snapshot comes from memory."""

    def __init__(self, runner: Any, *, readonly: bool = False) -> None:
        self.runner = runner
        self.run_id = runner.run_id
        self.readonly = readonly
        self._seen = 0

    async def snapshot(self) -> RunSnapshot:
        return self.runner.snapshot()

    def drain_events(self, limit: int = 200) -> list[EngineEvent]:
        events = self.runner.events
        out: list[EngineEvent] = []
        while events and len(out) < limit:
            out.append(events.popleft())
        return out

    async def pause(self) -> None:
        await self.runner.pause()

    async def resume(self) -> None:
        await self.runner.resume()

    async def cancel(self) -> None:
        await self.runner.cancel()

    async def set_concurrency(self, n: int) -> None:
        self.runner.set_concurrency(n)

    async def set_strategy(self, name: str) -> None:
        self.runner.set_strategy(name)


class DbRunSource:
    """A run followed through SQLite (another process may be executing it).

    The snapshot is rebuilt from the ``runs`` row (state, heartbeat and the
    ``live`` JSON the runner writes twice a second: gauges, breakers, lanes,
    active batches), item counts, recent batches and the metric series.
    Commands go through the ``control`` table, which the owning runner polls.
    """

    def __init__(self, store: Any, run_id: int, *, readonly: bool = False) -> None:
        self.store = store
        self.run_id = run_id
        self.readonly = readonly
        self.local: LiveRunSource | None = None
        self._last_state: str | None = None
        self._events: list[EngineEvent] = []
        self._last_batch = 0

    async def snapshot(self) -> RunSnapshot:
        from engine.models import (
            BatchState,
            BatchView,
            BreakerTransition,
            BreakerView,
            LaneView,
            PhaseView,
            RateLimitGauge,
        )

        await self.store.detect_interrupted()
        run = await self.store.require_run(self.run_id)
        flags = await self.store.run_flags(self.run_id)
        live = flags.get("live") or {}
        if run.state.value in ("running", "paused") and live.get("counts"):
            # the owner writes its counts twice a second: counting 100k item rows at 4 Hz would not
            counts = Counts(**live["counts"])
        else:
            counts = await self.store.counts(self.run_id)
        stats = flags.get("stats") or {}
        batches = await self.store.list_batches(self.run_id, limit=100)
        active_ids = {b["id"] for b in live.get("in_flight_batches", [])}
        active = [BatchView(**{**b, "state": BatchState(b["state"])}) for b in live.get("in_flight_batches", [])]
        recent = active + [b for b in batches if b.id not in active_ids]
        series = await self.store.metric_series(self.run_id, limit=300)
        counters = stats.get("counters", {})
        now = time.time()
        if self._last_state != run.state.value:
            if self._last_state is not None:
                self._events.append(EngineEvent(now, EventKind.RUN_STATE, self.run_id, run.state.value))
            self._last_state = run.state.value
        if batches and batches[0].id > self._last_batch:
            if self._last_batch:
                for b in reversed(batches):
                    if b.id > self._last_batch and b.ended_at:
                        self._events.append(EngineEvent(now, EventKind.BATCH_ENDED, self.run_id,
                                                        f"batch {b.id} {b.state.value}", {"batch": b.id}))
            self._last_batch = batches[0].id
        running = run.state.value in ("running", "paused")
        return RunSnapshot(
            run=run, counts=counts,
            items_per_s=live.get("items_per_s", 0.0) if running else 0.0,
            eta_s=live.get("eta_s") if running else None,
            concurrency=live.get("concurrency", 0), batch_size=live.get("batch_size", 0),
            strategy=live.get("strategy", ""), retries=stats.get("retries", 0),
            api_requests=counters.get("api_requests", 0), api_requests_saved=counters.get("api_requests_saved", 0),
            errors_by_class=stats.get("errors_by_class", {}),
            rate_limits=[RateLimitGauge(**g) for g in live.get("rate_limits", [])],
            lanes=[LaneView(**lane) for lane in live.get("lanes", [])],
            breakers=[
                BreakerView(**{**b, "transitions": [BreakerTransition(**t) for t in b.get("transitions", [])]})
                for b in live.get("breakers", [])
            ],
            recent_batches=recent, series=series, taken_at=now,
            phases=[PhaseView(**p) for p in live.get("phases", [])],
            # a finished run's total is what it is; otherwise the owner's last word
            total_final=run.state.finished or bool(live.get("total_final", True)),
            planning=running and bool(live.get("planning", False)),
            counters={k: v for k, v in counters.items() if isinstance(v, int)},
        )

    def drain_events(self, limit: int = 200) -> list[EngineEvent]:
        out, self._events = self._events[-limit:], []
        return out

    async def _send(self, command: ControlCommand, arg: str | None = None) -> None:
        if self.readonly:
            from engine.errors import InputError

            raise InputError("read-only: this console may not change runs")
        if self.local is not None:
            await self.local.runner.apply_command(command, arg)
        else:
            await self.store.send_control(self.run_id, command, arg)

    async def pause(self) -> None:
        await self._send(ControlCommand.PAUSE)

    async def resume(self) -> None:
        await self._send(ControlCommand.RESUME)

    async def cancel(self) -> None:
        await self._send(ControlCommand.CANCEL)

    async def set_concurrency(self, n: int) -> None:
        await self._send(ControlCommand.CONCURRENCY, str(n))

    async def set_strategy(self, name: str) -> None:
        await self._send(ControlCommand.STRATEGY, name)
