"""A job kind defined only under tests/ (echo_kind.py), registered through an entry point by the
test: its CLI subcommand, config options (YAML file and environment), table, services, results
and report section work through ``batchdeck``'s ``main()`` and the Engine, with no edit to
``engine/`` or ``console/``."""

from __future__ import annotations

import asyncio
import importlib
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from console.cli import build_parser, main
from engine.api import Engine
from engine.kinds import Connection, installed_kinds
from engine.models import RunState

HERE = Path(__file__).parent


@pytest.fixture
def echo_installed(tmp_path, monkeypatch):
    """``echo = echo_kind:KIND`` under ``batchdeck.kinds``, as a package installing it would declare."""
    site = tmp_path / "site"
    dist = site / "batchdeck_echo_kind-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: batchdeck-echo-kind\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[batchdeck.kinds]\necho = echo_kind:KIND\n\n"
                                           "[batchdeck.views]\necho = echo_view:view\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(HERE))
    importlib.invalidate_caches()
    monkeypatch.delitem(sys.modules, "echo_kind", raising=False)
    monkeypatch.delitem(sys.modules, "echo_view", raising=False)
    yield
    importlib.invalidate_caches()


def said(db: Path, run_id: int) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT key, word FROM echo_said WHERE run_id=? ORDER BY rowid", (run_id,)).fetchall()


def test_the_kind_is_not_there_until_its_entry_point_is(tmp_path):
    assert "echo" not in installed_kinds()
    assert " echo " not in build_parser().format_help()


def test_its_command_config_table_results_replay_and_report(echo_installed, tmp_path, monkeypatch, capsys):
    assert "echo" in installed_kinds()
    assert "say a word per item" in build_parser().format_help()
    db, config = tmp_path / "e.db", tmp_path / "batchdeck.yaml"
    config.write_text("echo:\n  word: hi\n")                    # the kind's section of the config file
    monkeypatch.setenv("BATCHDECK_ECHO_REPEAT", "2")             # and its option from the environment
    code = main(["echo", "--items", "4", "--fail", "3", "--config", str(config), "--db", str(db), "--headless"])
    assert code == 1                                             # the failed item remains: the kind says so
    assert "echo run 1: 6 said" in capsys.readouterr().out
    assert sorted(said(db, 1)) == [(f"echo-{i}", "hi") for i in (0, 0, 1, 1, 2, 2)]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='kind.echo.schema'").fetchone() == ("1",)

    assert main(["replay", "1", "--db", str(db), "--headless"]) == 0     # the failed item, in a child run
    assert "echo run 2: 2 said" in capsys.readouterr().out
    assert said(db, 2) == [("echo-3", "hi"), ("echo-3", "hi")]

    assert main(["report", "2", "--db", str(db), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sections"]["echo"] == {"said": 2}
    assert main(["report", "2", "--db", str(db)]) == 0
    assert "## Echo\n\n2 lines said" in capsys.readouterr().out


@pytest.mark.parametrize("text,env,named", [
    ("echo:\n  repeat: 9\n", {}, "batchdeck.yaml: echo.repeat = 9: out of range"),
    ("echo:\n  wrod: hi\n", {}, "batchdeck.yaml: unknown key echo.wrod; did you mean echo.word?"),
    ("", {"BATCHDECK_ECHO_REPEAT": "two"}, "BATCHDECK_ECHO_REPEAT: echo.repeat = 'two': not an integer"),
])
def test_a_bad_option_of_the_kind_is_one_line_naming_it(echo_installed, tmp_path, monkeypatch, capsys, text, env,
                                                         named):
    config = tmp_path / "batchdeck.yaml"
    config.write_text(text)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["echo", "--config", str(config), "--db", str(tmp_path / "e.db"), "--headless"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and named in err[0], err


def test_it_pauses_on_a_gate_resumes_and_a_stopped_run_resumes_through_the_cli(echo_installed, tmp_path, capsys):
    db = tmp_path / "p.db"

    async def scenario() -> int:
        async with await Engine.open(db) as engine:
            run_id = await engine.create_run("echo", {"items": 6, "hold_from": 2})
            gate, held = asyncio.Event(), asyncio.Event()
            handle = await engine.start(run_id, connection=Connection(extra={"gate": gate, "held": held}))
            await held.wait()                               # held mid-flight by the test's gate
            # the two items before the gate committed first: a pause between an item's end and
            # its commit runs it again and the run never completes (a runner bug, reported)
            while (await engine.store.counts(run_id)).done < 2:
                await asyncio.sleep(0.01)
            await handle.pause()
            paused = await engine.store.counts(run_id)
            assert (await engine.store.get_run(run_id)).state is RunState.PAUSED
            assert paused.in_flight == 0 and paused.done == 2 and paused.pending == 4
            gate.set()
            await handle.resume()
            assert await handle.wait() is RunState.COMPLETED
            assert sorted(k for k, _ in said(db, run_id)) == [f"echo-{i}" for i in range(6)]   # each once

            stopped = await engine.create_run("echo", {"items": 5, "hold_from": 1})
            gate, held = asyncio.Event(), asyncio.Event()
            handle = await engine.start(stopped, connection=Connection(extra={"gate": gate, "held": held}))
            await held.wait()
            assert await handle.stop("stopped by the test; resume to continue") is RunState.PAUSED
            return stopped

    stopped = asyncio.run(scenario())
    assert main(["resume", str(stopped), "--db", str(db), "--headless"]) == 0    # no gate from the CLI
    assert f"echo run {stopped}: 5 said" in capsys.readouterr().out
    assert sorted(k for k, _ in said(db, stopped)) == [f"echo-{i}" for i in range(5)]


def test_its_results_view_opens_in_the_console_with_what_the_run_said(echo_installed, tmp_path, monkeypatch):
    """The same test-only kind brings its console view (``batchdeck.views``): ``f`` on one of its
    runs opens it, and the rows come from the kind's own table through its named query."""
    from console.app import BatchdeckApp
    from console.panes.rowtable import RowTable
    from engine.config import load_config

    monkeypatch.setenv("BATCHDECK_ECHO_WORD", "[bold]hey[/]")     # text from outside: shown literally
    db = tmp_path / "v.db"
    assert main(["echo", "--items", "3", "--db", str(db), "--headless"]) == 0

    async def browse() -> tuple[str, list[tuple[str, str]], str]:
        async with await Engine.open(db, load_config(None, env={})) as engine:
            app = BatchdeckApp(engine, run_id=1, refresh_hz=0, export_dir=tmp_path)
            async with app.run_test(size=(100, 30)) as pilot:
                await settle(pilot)
                await pilot.press("f")
                await settle(pilot)
                table = app.screen.query_one(RowTable)
                return (type(app.screen).__name__, [(r["key"], r["word"]) for r in table.lines],
                        table.render_line(1).text)

    async def settle(pilot) -> None:      # workers (the view's query) finish and their messages land
        for _ in range(3):
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()

    screen, rows, first_line = asyncio.run(browse())
    assert screen == "EchoScreen"
    assert rows == [(f"echo-{i}", "[bold]hey[/]") for i in range(3)]
    assert "[bold]hey[/]" in first_line
