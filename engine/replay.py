"""Replay a chosen set of failed items: a child run holding copies of them.

:meth:`engine.api.Engine.replay` replays every failed item of a run or batch;
this module picks them first — by batch and by an :mod:`engine.filters`
filter (``replay RUN --where 'error=server'``) — so a bulk replay applies only to
what the filter shows, and a dry run can count them without creating anything.
The child is built exactly as ``Engine.replay`` builds it (same spec key
``replay_of``, same ``task_graph`` artifact), with the filter recorded in both.
"""

from __future__ import annotations

from typing import Any

from engine.config import AppConfig
from engine.errors import InputError
from engine.filters import ItemFilter
from engine.models import RunInfo
from engine.store import Store
from engine.store_rows import FailedItem


async def select_failed(store: Store, run_id: int, *, batch_id: int | None = None,
                        where: ItemFilter | None = None) -> list[dict[str, Any]]:
    """The failed items of ``run_id`` (of one batch) that ``where`` matches, in item order.

    Raises InputError for a run or batch that does not exist, so "no such batch"
    is never reported as "no failed items".
    """
    await store.require_run(run_id)
    if batch_id is not None and not await store.has_batch(run_id, batch_id):
        first_last = await store.batch_range(run_id)
        known = f"its batches are {first_last[0]} to {first_last[1]}" if first_last else "it has no batches"
        raise InputError(f"run {run_id} has no batch {batch_id} ({known})")
    items = await store.failed_items(run_id, batch_id)
    if where is None:
        return items
    if where.needs_status:
        status = await store.last_attempt_status(run_id)
        for item in items:
            item["http_status"] = status.get(item["id"])
    return [item for item in items if where.matches(item)]


async def create_replay(store: Store, parent: RunInfo, items: list[FailedItem], replay_of: dict[str, Any],
                        config: AppConfig, *, summary: str) -> int:
    """The child run of ``parent`` holding copies of ``items`` (its failed items), planned already,
    with its ``task_graph`` artifact; ``replay_of`` goes into its spec. Returns its id.
    (Every replay, of a batch, a run, a filter or chosen items, is built here.)"""
    spec = {**parent.spec, "replay_of": replay_of}
    child = await store.create_run(parent.kind, spec, config.to_dict(), parent_id=parent.id, planned=True)
    await store.add_replay_items(child, items)
    graph = {"kind": parent.kind, "replay_of": replay_of, "planned": len(items),
             "keys": [it.key for it in items[:1000]]}
    await store.add_artifact(child, "task_graph", graph, summary=summary)
    return child


async def replay_items(store: Store, run_id: int, items: list[dict[str, Any]], *, batch_id: int | None = None,
                       where: ItemFilter | None = None, config: AppConfig | None = None) -> int:
    """Create the child run of ``items`` (failed items of ``run_id``, as :func:`select_failed`
    gives them); return its id."""
    if not items:
        raise InputError(f"run {run_id}: nothing to replay")
    parent = await store.require_run(run_id)
    cfg = config or AppConfig.from_dict(parent.config, source=f"run {run_id} config")
    replay_of: dict[str, Any] = {"run": run_id, "batch": batch_id}
    if where is not None:
        replay_of["where"] = where.text
    wanted = {it["id"] for it in items}
    rows = [row for row in await store.failed_rows(run_id) if row.id in wanted]
    chosen = f" matching {where.text}" if where is not None else ""
    return await create_replay(store, parent, rows, replay_of, cfg,
                               summary=f"replay of {len(rows)} failed items{chosen} of run {run_id}")


__all__ = ["create_replay", "replay_items", "select_failed"]
