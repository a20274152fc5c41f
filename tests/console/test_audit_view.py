"""The audit log in the console (issue 8): `a` lists who did what to the selected run, newest first,
whether the CLI or this console did it, with every value shown as the plain text it is."""

from __future__ import annotations

import json
import time

import pytest
from console_fakes import settle
from textual.widgets import Input

from console.app import BatchdeckApp
from console.panes.rowtable import RowTable
from console.screens.audit import AuditScreen
from console.screens.dialogs import ExportScreen
from engine.api import Engine
from engine.audit import Action, Origin, entries, record
from engine.config import load_config
from engine.safetext import visible

BOUND_S = 40.0
HOSTILE = "[red]where[/red] \x1b]0;pwned\x07 [link=https://evil.example]x[/link]"


@pytest.fixture
async def engine(tmp_path):
    eng = await Engine.open(tmp_path / "audit.db", load_config(None, env={}, overrides={
        "retry_delay_base": 0.1, "max_concurrent_requests": 20, "default_strategy": "sequential"}))
    yield eng
    await eng.close()


def screen_text(table: RowTable) -> list[str]:
    return [table.render_line(y).text for y in range(len(table.lines) + 1)]


async def test_a_lists_cli_and_console_actions_newest_first_with_hostile_text_shown_literally(engine, tmp_path):
    # items from 19,000 on wait for a gate file nobody writes: the run is running until the test stops it
    run_id = await engine.create_run("synthetic", {"items": 20_000, "latency_ms": 5, "seed": 3, "hold_from": 19_000,
                                                   "gate_file": str(tmp_path / "gate")})
    await record(engine.store, run_id, Action.REPLAY, HOSTILE, origin=Origin.CLI)     # as `batchdeck replay` does
    handle = await engine.start(run_id)
    app = BatchdeckApp(engine, source=handle.source, export_dir=tmp_path)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            deadline = time.monotonic() + BOUND_S
            while app.snapshot is None or app.snapshot.counts.done == 0:     # + acts on a running run
                assert time.monotonic() < deadline, "no progress"
                await app.refresh_snapshot()
                await pilot.pause(0.05)
            await pilot.press("plus")
            while len(await entries(engine.store, run_id)) < 2:
                assert time.monotonic() < deadline, "the console's + was never recorded"
                await pilot.pause(0.05)
            await pilot.press("a")
            await settle(pilot)
            assert isinstance(app.screen, AuditScreen)
            table = app.screen.query_one(RowTable)
            header, newest, oldest = screen_text(table)
            assert header.split() == ["when", "action", "detail", "from", "user", "host/pid"]
            assert newest.split()[2:4] == ["concurrency", "2"] and " console " in newest   # sequential: 1, +1
            assert "replay" in oldest and " cli " in oldest
            assert visible(HOSTILE) in oldest and "\x1b" not in oldest     # literal, controls visible
            assert "2 operator actions" in str(app.screen.query_one("#audit-status").render())

            await pilot.press("e")                      # export what is shown
            await pilot.pause()
            assert isinstance(app.screen, ExportScreen)
            target = tmp_path / "audit.json"
            app.screen.query_one(Input).value = str(target)
            await pilot.press("enter")
            await settle(pilot)
            rows = json.loads(target.read_text())
            assert [(r["action"], r["origin"]) for r in rows] == [("concurrency", "console"), ("replay", "cli")]
            assert rows[1]["arg"] == HOSTILE             # JSON keeps the value as it is

            await pilot.press("escape")
            assert not isinstance(app.screen, AuditScreen)
    finally:
        await handle.stop()
