"""engine/filters.py, engine/replay.py and engine/audit.py in-process: what `replay --where` selects, the audit rows."""

from __future__ import annotations

import getpass
import json
import sqlite3

import pytest

from engine.audit import AuditedSource, Origin, entries, record
from engine.errors import InputError
from engine.filters import parse_filter
from engine.replay import replay_items, select_failed
from engine.store import SCHEMA_VERSION, Store
from engine.store_rows import ATTEMPT_INSERT_SQL


def item(**kw):
    return {"key": "repo:acme/app", "lane": "read", "error_class": "server", "batch_id": 4, "http_status": 502,
            **kw}


@pytest.mark.parametrize(("where", "matching", "other"), [
    ("error=server", item(), item(error_class="client")),
    ("error=server|timeout", item(error_class="timeout"), item(error_class="network")),
    ("lane=graphql", item(lane="graphql"), item()),
    ("key=repo:acme/svc-*", item(key="repo:acme/svc-pay"), item(key="repo:acme/app")),
    ("key=file:*package-lock.json", item(key="file:acme/a:sub/package-lock.json"), item(key="file:acme/a:yarn.lock")),
    ("batch=4|7", item(batch_id=7), item(batch_id=5)),
    ("status=5xx", item(http_status=503), item(http_status=404)),
    ("status=404", item(http_status=404), item(http_status=None)),
    (" error = server , lane = read ", item(), item(lane="graphql")),
    ("STATUS=5XX", item(), item(http_status=429)),
])
def test_a_filter_matches_what_it_says_and_nothing_else(where, matching, other):
    flt = parse_filter(where)
    assert flt.matches(matching) and not flt.matches(other)


@pytest.mark.parametrize(("where", "needle"), [
    ("", "empty clause"), ("error=server,", "empty clause"), ("error=", "empty value"),
    ("error=server|", "empty value"), ("batch=two", "not a batch number"), ("status=99", "not an HTTP status"),
    ("kind=x", "unknown field 'kind'"),
])
def test_a_bad_filter_names_the_clause(where, needle):
    with pytest.raises(InputError, match=needle):
        parse_filter(where)


async def _failed_run(store: Store) -> int:
    """Run 1: six failed items over two batches and two lanes, their last attempts' statuses stored."""
    run_id = await store.create_run("synthetic", {"items": 6}, {})
    rows = [
        # key, lane, error_class, batch, statuses of its attempts (the last one counts)
        ("repo:acme/a", "read", "server", 1, [500, 502]),
        ("repo:acme/b", "read", "client", 1, [404]),
        ("file:acme/a:package-lock.json", "graphql", "timeout", 2, [None]),
        ("file:acme/b:yarn.lock", "graphql", "server", 2, [404, 503]),
        ("repo:acme/c", "read", "rate_limited", 2, [403]),
        ("repo:acme/d", "read", "server", 2, [502]),
    ]
    for seq, (key, lane, error_class, batch, statuses) in enumerate(rows, 1):
        item_id = await store.write(
            "INSERT INTO items (run_id, seq, key, payload, lane, state, attempts, batch_id, error_class, last_error) "
            "VALUES (?, ?, ?, '{}', ?, 'failed', ?, ?, ?, 'boom')",
            (run_id, seq, key, lane, len(statuses), batch, error_class))
        await store.write_many([(ATTEMPT_INSERT_SQL, [(run_id, item_id, batch, 0.0, 1.0, "error", error_class, s)
                                                      for s in statuses])])
    for batch in (1, 2):
        await store.write("INSERT INTO batches (run_id, id, size, state, started_at) VALUES (?, ?, 3, 'done', 0)",
                          (run_id, batch))
    return run_id


async def _keys(store: Store, where: str | None, batch: int | None = None) -> list[str]:
    items = await select_failed(store, 1, batch_id=batch, where=parse_filter(where) if where else None)
    return [i["key"] for i in items]


async def test_select_failed_applies_every_field(tmp_path):
    async with await Store.open(tmp_path / "f.db") as store:
        await _failed_run(store)
        assert len(await _keys(store, None)) == 6
        assert await _keys(store, "error=server") == ["repo:acme/a", "file:acme/b:yarn.lock", "repo:acme/d"]
        assert await _keys(store, "status=5xx") == ["repo:acme/a", "file:acme/b:yarn.lock", "repo:acme/d"]
        assert await _keys(store, "status=404") == ["repo:acme/b"]         # yarn.lock's last attempt was a 503
        assert await _keys(store, "lane=graphql,error=timeout") == ["file:acme/a:package-lock.json"]
        assert await _keys(store, "key=repo:*,error=server|rate_limited") == ["repo:acme/a", "repo:acme/c",
                                                                              "repo:acme/d"]
        assert await _keys(store, "error=server", batch=2) == ["file:acme/b:yarn.lock", "repo:acme/d"]
        with pytest.raises(InputError, match="run 1 has no batch 9 \\(its batches are 1 to 2\\)"):
            await select_failed(store, 1, batch_id=9)


async def test_the_child_holds_the_selection_and_records_the_filter(tmp_path):
    async with await Store.open(tmp_path / "c.db") as store:
        await _failed_run(store)
        where = parse_filter("status=5xx")
        child = await replay_items(store, 1, await select_failed(store, 1, where=where), where=where)
        rows = await store.fetchall("SELECT key, state FROM items WHERE run_id=? ORDER BY seq", (child,))
        assert rows == [("repo:acme/a", "pending"), ("file:acme/b:yarn.lock", "pending"), ("repo:acme/d", "pending")]
        run = await store.require_run(child)
        assert run.parent_id == 1 and run.spec["replay_of"] == {"run": 1, "batch": None, "where": "status=5xx"}
        graph = (await store.list_artifacts(child, "task_graph"))[0]
        assert graph["data"]["planned"] == 3 and "matching status=5xx" in graph["summary"]


class _Source:
    run_id = 7
    readonly = False

    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[tuple] = []
        self.refuse = refuse

    async def _call(self, *call):
        if self.refuse:
            raise InputError("read-only: this console may not change runs")
        self.calls.append(call)

    async def pause(self):
        await self._call("pause")

    async def resume(self):
        await self._call("resume")

    async def cancel(self):
        await self._call("cancel")

    async def set_concurrency(self, n):
        await self._call("concurrency", n)

    async def set_strategy(self, name):
        await self._call("strategy", name)


async def test_the_console_wrapper_records_each_command_it_sends(tmp_path):
    async with await Store.open(tmp_path / "a.db") as store:
        inner = _Source()
        source = AuditedSource(inner, store, Origin.CONSOLE)
        await source.pause()
        await source.set_concurrency(4)
        await source.resume()
        await source.cancel()
        assert inner.calls == [("pause",), ("concurrency", 4), ("resume",), ("cancel",)]
        assert source.run_id == 7                     # everything else passes through
        log = await entries(store, 7)
        assert [(e.action, e.arg, e.origin, e.user) for e in log] == [
            ("pause", None, "console", getpass.getuser()), ("concurrency", "4", "console", getpass.getuser()),
            ("resume", None, "console", getpass.getuser()), ("cancel", None, "console", getpass.getuser())]
        refused = AuditedSource(_Source(refuse=True), store)
        with pytest.raises(InputError):
            await refused.pause()
        assert len(await entries(store, 7)) == 4      # a refused command is not an action taken


async def test_entries_are_per_run_oldest_first_and_bounded(tmp_path):
    async with await Store.open(tmp_path / "b.db") as store:
        for n in range(5):
            await record(store, 1 + n % 2, "pause", origin=Origin.CLI, user="ops")
        assert [e.run_id for e in await entries(store)] == [1, 2, 1, 2, 1]
        assert [e.id for e in await entries(store, 1)] == [1, 3, 5]
        assert [e.id for e in await entries(store, limit=2)] == [4, 5]


def test_a_schema_2_database_gains_the_audit_table(tmp_path):
    import asyncio

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                           "INSERT INTO meta VALUES ('schema_version', '2');")

    async def reopen():
        async with await Store.open(db) as store:
            await record(store, 1, "cancel", origin=Origin.CLI)
            return [e.to_dict() for e in await entries(store)]

    log = asyncio.run(reopen())
    assert log[0]["action"] == "cancel" and json.dumps(log)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
