"""One owner per fact: event kinds and control commands are closed enums (the README lists
them as defined), control commands reach a run from another connection, a replay copies its
failed items as they were, and one function gives the concurrency ceiling."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest

from engine.api import Engine
from engine.config import load_config
from engine.errors import InputError
from engine.events import ControlCommand, EventKind, markdown
from engine.models import RunState
from engine.sizing import concurrency_ceiling, stored_concurrency_ceiling
from engine.store import Store

from .conftest import fast_config

README = Path(__file__).resolve().parents[2] / "README.md"


async def until(predicate, timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


def test_the_readme_lists_exactly_the_event_kinds_and_control_commands_the_engine_defines():
    text = README.read_text()
    section = re.search(r"<!-- events:begin -->\n(.*?)<!-- events:end -->", text, re.S)
    assert section is not None, "README lost its generated events section"
    assert section.group(1).strip() == markdown().strip()   # regenerate with: python -m engine.events
    events_part, commands_part = section.group(1).split("Control commands")
    assert re.findall(r"^- `([a-z_]+)`", events_part, re.M) == [k.value for k in EventKind]
    assert re.findall(r"^- `([a-z_]+)`", commands_part, re.M) == [c.value for c in ControlCommand]
    assert all(member.doc for member in [*EventKind, *ControlCommand])


async def test_every_event_a_run_emits_is_an_event_kind(engine):
    run_id = await engine.create_run("synthetic", {"items": 300, "permanent_fail_rate": 0.05, "seed": 2})
    handle = await engine.start(run_id)
    handle.runner.set_concurrency(4)
    handle.runner.set_strategy("conservative")
    assert await handle.wait() is RunState.COMPLETED
    kinds = [event.kind for event in handle.runner.events]
    assert kinds and all(isinstance(kind, EventKind) for kind in kinds)
    assert {EventKind.RUN_STATE, EventKind.BATCH_STARTED, EventKind.BATCH_ENDED, EventKind.CHECKPOINT,
            EventKind.ARTIFACT, EventKind.CONCURRENCY, EventKind.STRATEGY} <= set(kinds)


async def test_concurrency_and_strategy_reach_a_run_from_another_connection(engine, tmp_path):
    gate, held = asyncio.Event(), asyncio.Event()
    run_id = await engine.create_run("synthetic", {"items": 200, "hold_from": 0})
    handle = await engine.start(run_id, services={"gate": gate, "held": held})
    await held.wait()
    async with Engine(await Store.open(engine.store.path), fast_config()) as other:
        await other.request(run_id, ControlCommand.CONCURRENCY, "3")
        await other.request(run_id, "strategy", "parallel")       # the CLI's text parses to the enum
        with pytest.raises(InputError, match="unknown control command 'explode'"):
            await other.request(run_id, "explode")
        with pytest.raises(InputError, match="unknown control command"):
            await other.store.send_control(run_id, "explode")
        await until(lambda: handle.runner.sizer.strategy.value == "parallel")
        await until(lambda: any(e.kind is EventKind.CONTROL and "concurrency 3" in e.message
                                for e in handle.runner.events))
        stored = await other.store.fetchall("SELECT command, arg FROM control WHERE run_id=? ORDER BY id",
                                            (run_id,))
    assert stored == [("concurrency", "3"), ("strategy", "parallel")]     # nothing for the unknown one
    gate.set()
    assert await handle.wait() is RunState.COMPLETED
    assert not await engine.store.pending_control(run_id)                  # both consumed


async def test_a_replay_holds_copies_of_the_failed_items_as_they_were(engine):
    spec = {"items": 400, "permanent_fail_rate": 0.05, "seed": 9, "lane": "read"}
    run_id = await engine.create_run("synthetic", spec)
    assert await (await engine.start(run_id)).wait() is RunState.COMPLETED
    failed = await engine.store.failed_rows(run_id)
    assert failed
    child = await engine.replay(run_id)
    rows = await engine.store.fetchall(
        "SELECT seq, key, payload, priority, lane, state, attempts, batch_id FROM items WHERE run_id=? ORDER BY seq",
        (child,))
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [(f.key, f.payload, f.priority, f.lane) for f in failed]
    assert [r[0] for r in rows] == list(range(1, len(failed) + 1))
    assert {(r[5], r[6], r[7]) for r in rows} == {("pending", 0, None)}
    graph = (await engine.store.list_artifacts(child, "task_graph"))[0]
    assert graph["data"]["planned"] == len(failed) and graph["data"]["keys"] == [f.key for f in failed]
    chosen = await engine.replay_items(run_id, [failed[0].id, -1])      # an id not failed here is ignored
    assert [r[0] for r in await engine.store.fetchall("SELECT key FROM items WHERE run_id=?", (chosen,))] == \
        [failed[0].key]


def test_one_function_gives_the_concurrency_ceiling_of_a_config_or_a_stored_run():
    config = load_config(None, env={}, overrides={"max_concurrent_requests": 7})
    assert concurrency_ceiling(config) == 7 == stored_concurrency_ceiling(config.to_dict())
    defaults = load_config(None, env={}, overrides={})
    assert stored_concurrency_ceiling({}) == concurrency_ceiling(defaults)
    # a stored config this batchdeck no longer accepts: the defaults' ceiling, not a guess
    assert stored_concurrency_ceiling({"batch": {"concurrency": {"max_concurrent_requests": "many"}}}) == \
        concurrency_ceiling(defaults)


def test_the_cli_steers_strategy_as_it_does_concurrency_and_refuses_an_unknown_one(tmp_path):
    from .test_cli_operator import cli, job_file

    db = tmp_path / "steer.db"
    cli("run", str(job_file(tmp_path, items=20, permanent_fail_rate=0.5)), "--db", str(db), "--headless")
    child = cli("replay", "1", "--create-only", "--db", str(db)).stdout.strip()    # pending: nobody runs it
    result = cli("strategy", child, "parallel", "--db", str(db))
    assert result.returncode == 0 and "strategy parallel queued for run" in result.stderr
    bad = cli("strategy", child, "reckless", "--db", str(db))
    assert bad.returncode == 2 and "reckless" in bad.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT command, arg FROM control").fetchall() == [("strategy", "parallel")]
        assert conn.execute("SELECT action, arg FROM audit WHERE run_id=?", (int(child),)).fetchall() == [
            ("strategy", "parallel")]


def test_spawning_kinds_is_declared_through_the_processor_contract_with_none_as_the_default():
    from engine.kinds import load_kind
    from engine.processor import DeclaresSpawns, spawning_kinds

    scan = load_kind("ioc-scan").processor()
    assert isinstance(scan, DeclaresSpawns) and spawning_kinds(scan) == frozenset({"repo"})
    synthetic = load_kind("synthetic").processor()
    assert not isinstance(synthetic, DeclaresSpawns) and spawning_kinds(synthetic) is None


async def test_run_detail_gives_show_what_it_prints_without_the_store(engine):
    run_id = await engine.create_run("synthetic", {"items": 120, "permanent_fail_rate": 0.1, "seed": 3})
    assert await (await engine.start(run_id)).wait() is RunState.COMPLETED
    detail = await engine.run_detail(run_id)
    assert detail.run.id == run_id and detail.run.state is RunState.COMPLETED
    assert detail.counts == await engine.counts(run_id)
    assert detail.counts.total == 120 and detail.counts.failed > 0 and detail.counts.balanced()
    assert detail.checkpoints and detail.checkpoints[-1]["counts"]["done"] == detail.counts.done
    assert "task_graph" in {a["kind"] for a in detail.artifacts}
    with pytest.raises(InputError):
        await engine.run_detail(run_id + 99)
