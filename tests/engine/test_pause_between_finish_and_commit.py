"""A pause that lands while items have finished but not yet been committed (issue 11 review).

The feeder was reading its next page when the pause cancelled it; the cancelled read left
a cursor open on the store's reader connection, which then kept its old WAL snapshot: after
resume the first page showed the two finished items as pending, they ran again, the counts
went past the total (done 8 of 6) and ``wait()`` never returned.
"""

from __future__ import annotations

import asyncio

from engine.api import Engine
from engine.config import load_config
from engine.models import RunState


async def test_resume_after_a_pause_runs_each_item_once_and_completes(tmp_path):
    config = load_config(None, env={}, overrides={"max_concurrent_requests": 4})
    async with await Engine.open(tmp_path / "r.db", config) as engine:
        run_id = await engine.create_run("synthetic", {"items": 6, "hold_from": 2, "latency_ms": 0})
        gate, held = asyncio.Event(), asyncio.Event()
        handle = await engine.start(run_id, services={"gate": gate, "held": held})
        await held.wait()                      # items 0 and 1 finished; 2 waits at the gate
        await handle.pause()
        gate.set()
        await handle.resume()
        assert await asyncio.wait_for(handle.wait(), 60) is RunState.COMPLETED
        counts = await engine.store.counts(run_id)
        attempts = await engine.store.fetchall("SELECT key, state FROM items WHERE run_id=? ORDER BY seq", (run_id,))
    assert (counts.done, counts.pending, counts.total) == (6, 0, 6)
    assert handle.runner.counts.done == 6            # no item ran twice
    assert [state for _, state in attempts] == ["done"] * 6
