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
from engine.store import ITEM_INSERT_SQL, Store

_FAILED_SQL = (
    "SELECT id, seq, key, payload, priority, lane, attempts, error_class, last_error, batch_id FROM items "
    "WHERE run_id=? AND state='failed'"
)
_FAILED_KEYS = ("id", "seq", "key", "payload", "priority", "lane", "attempts", "error_class", "last_error",
                "batch_id")
# the status of each item's last attempt: SQLite takes the bare column from the row holding max(id)
_LAST_STATUS_SQL = "SELECT item_id, http_status, max(id) FROM attempts WHERE run_id=? GROUP BY item_id"


async def select_failed(store: Store, run_id: int, *, batch_id: int | None = None,
                        where: ItemFilter | None = None) -> list[dict[str, Any]]:
    """The failed items of ``run_id`` (of one batch) that ``where`` matches, in item order.

    Raises InputError for a run or batch that does not exist, so "no such batch"
    is never reported as "no failed items".
    """
    await store.require_run(run_id)
    sql, params = _FAILED_SQL, [run_id]
    if batch_id is not None:
        if await store.fetchone("SELECT 1 FROM batches WHERE run_id=? AND id=?", (run_id, batch_id)) is None:
            row = await store.fetchone("SELECT min(id), max(id) FROM batches WHERE run_id=?", (run_id,))
            known = f"its batches are {row[0]} to {row[1]}" if row and row[0] else "it has no batches"
            raise InputError(f"run {run_id} has no batch {batch_id} ({known})")
        sql += " AND batch_id=?"
        params.append(batch_id)
    items = [dict(zip(_FAILED_KEYS, row, strict=True)) for row in await store.fetchall(sql + " ORDER BY seq",
                                                                                          params)]
    if where is None:
        return items
    if where.needs_status:
        status = {row[0]: row[1] for row in await store.fetchall(_LAST_STATUS_SQL, (run_id,))}
        for item in items:
            item["http_status"] = status.get(item["id"])
    return [item for item in items if where.matches(item)]


async def replay_items(store: Store, run_id: int, items: list[dict[str, Any]], *, batch_id: int | None = None,
                       where: ItemFilter | None = None, config: AppConfig | None = None) -> int:
    """Create the child run of ``items`` (failed items of ``run_id``); return its id."""
    if not items:
        raise InputError(f"run {run_id}: nothing to replay")
    parent = await store.require_run(run_id)
    cfg = config or AppConfig.from_dict(parent.config, source=f"run {run_id} config")
    replay_of: dict[str, Any] = {"run": run_id, "batch": batch_id}
    if where is not None:
        replay_of["where"] = where.text
    spec = {**parent.spec, "replay_of": replay_of}
    child = await store.create_run(parent.kind, spec, cfg.to_dict(), parent_id=run_id, planned=True)
    rows = [(child, i + 1, it["key"], it["payload"], it["priority"], it["lane"]) for i, it in enumerate(items)]
    await store.write_many([(ITEM_INSERT_SQL, rows)])
    graph = {"kind": parent.kind, "replay_of": replay_of, "planned": len(rows),
             "keys": [it["key"] for it in items[:1000]]}
    chosen = f" matching {where.text}" if where is not None else ""
    await store.add_artifact(child, "task_graph", graph,
                             summary=f"replay of {len(rows)} failed items{chosen} of run {run_id}")
    return child


__all__ = ["replay_items", "select_failed"]
