"""Planning: the kind's planned items streamed into SQLite, once per run.

Items go to the recorder in chunks that it commits in its thread while the next chunk
is generated. Planning interrupted (a stop, a crash) keeps its items so far; a resume
plans again and ``INSERT OR IGNORE`` by key inserts nothing twice. The run's task graph
(how many items, by lane, and a digest of their keys) is stored as an artifact.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import AsyncIterable, Iterable
from typing import TYPE_CHECKING

from engine.events import EventKind, EventLog
from engine.models import PlannedItem, RunInfo
from engine.run.telemetry import dumps
from engine.store_rows import ArtifactRow, NewItem

if TYPE_CHECKING:
    from collections.abc import Callable

    from engine.phases import PhaseCounter
    from engine.processor import Processor, RunContext
    from engine.recorder import Recorder
    from engine.run.control import Lifecycle
    from engine.run.ledger import Ledger
    from engine.store import Store

PLAN_CHUNK = 5000


async def plan(*, run: RunInfo, processor: Processor, ctx: RunContext, store: Store, recorder: Recorder,
               ledger: Ledger, phases: PhaseCounter, lifecycle: Lifecycle, events: EventLog,
               clock: Callable[[], float]) -> None:
    events.emit(EventKind.RUN_STATE, "planning")
    lifecycle.planning = True
    planned_items = processor.plan(run.spec, ctx)
    if inspect.isawaitable(planned_items):
        planned_items = await planned_items
    chunk: list[NewItem] = []
    digest = hashlib.sha256()
    lanes: dict[str, int] = {}
    planned = 0

    async def flush_chunk() -> None:
        # hand the chunk to the recorder and let it commit in its thread while the next
        # chunk is generated; wait only when two chunks are already waiting
        recorder.insert_items(list(chunk))
        chunk.clear()
        if recorder.backlog >= 2 * PLAN_CHUNK:
            await recorder.flush()
        else:
            await asyncio.sleep(0)

    def add(p: PlannedItem) -> None:
        nonlocal planned
        planned += 1
        digest.update(p.key.encode() + b"\n")
        lanes[p.lane] = lanes.get(p.lane, 0) + 1
        phases.add(p.key)
        chunk.append(ledger.new_item(p))

    if isinstance(planned_items, AsyncIterable):
        async for p in planned_items:
            add(p)
            if len(chunk) >= PLAN_CHUNK:
                await flush_chunk()
    else:
        assert isinstance(planned_items, Iterable)
        for p in planned_items:
            add(p)
            if len(chunk) >= PLAN_CHUNK:
                await flush_chunk()
    await flush_chunk()
    await recorder.flush()
    await ledger.load(store)
    await phases.load(store, run.id)   # a re-plan after a crash inserts nothing twice
    lifecycle.planning = False
    graph = {
        "kind": run.kind, "spec": run.spec, "planned": planned,
        "total": ledger.counts.total, "lanes": lanes, "keys_sha256": digest.hexdigest(),
        "table": "items", "note": "every planned item is a row of the items table of this run",
    }
    recorder.add_artifact(ArtifactRow(run.id, None, "task_graph", clock(), f"{planned} items planned", dumps(graph)))
    recorder.mark_planned(run.id)
    await recorder.flush()
    events.emit(EventKind.ARTIFACT, f"task graph stored: {planned} items")
