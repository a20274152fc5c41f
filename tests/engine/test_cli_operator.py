"""The operator's side of the CLI (issue 8.8, 8.11, "replay what the filter shows", "an audit log").

`show` summarises and `--format json` has everything; `--version`; one error prefix; help on every
flag; "no such batch"; no replay advised for failures a replay repeats; `replay --where` with a
dry run; every pause, resume, cancel, concurrency change, replay and signal in `audit`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import engine.api as engine_api
from console.cli import build_parser, drive, main
from engine.api import Engine
from engine.audit import entries
from engine.kinds import JobKind
from engine.models import PlannedItem
from engine.store import Store

ROOT = Path(__file__).parents[2]


def cli(*args: str) -> subprocess.CompletedProcess:
    """``batchdeck ARGS`` in this process (a subprocess per call would cost a second of imports each)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:          # --version, --help
            code = exit_.code or 0
    return subprocess.CompletedProcess(["batchdeck", *args], code, out.getvalue(), err.getvalue())


def job_file(tmp_path: Path, name: str = "job.yaml", *, retries: int = 3, **spec: object) -> Path:
    path = tmp_path / name
    spec_text = ", ".join(f"{k}: {v}" for k, v in spec.items())
    path.write_text(f"kind: synthetic\nspec: {{{spec_text}}}\n"
                    f"config:\n  batch:\n    performance: {{retry_delay_base: 0.1, retry_attempts: {retries}}}\n")
    return path


def failed_by_class(db: Path, run_id: int) -> dict[str, list[str]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT error_class, key FROM items WHERE run_id=? AND state='failed' ORDER BY seq",
                            (run_id,)).fetchall()
    out: dict[str, list[str]] = {}
    for error_class, key in rows:
        out.setdefault(error_class, []).append(key)
    return out


@pytest.fixture(scope="module")
def mixed_failures(tmp_path_factory) -> Path:
    """Run 1: 400 synthetic items, some failing with server errors (not retried here), some with client errors."""
    tmp = tmp_path_factory.mktemp("mixed")
    db = tmp / "mixed.db"
    result = cli("run", str(job_file(tmp, items=400, fail_rate=0.1, permanent_fail_rate=0.05, retries=0)),
                 "--db", str(db), "--headless")
    assert result.returncode == 1, result.stderr
    classes = failed_by_class(db, 1)
    assert classes.get("server") and classes.get("client")
    return db


# ------------------------------------------------------------------------------------------- 8.11
def test_version_prints_the_installed_version():
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"batchdeck {metadata.version('batchdeck')}"


@pytest.mark.parametrize("args", [("runs", "--format", "xml"), ("show",), ("replay", "1", "--bogus"), ()])
def test_an_argument_error_is_one_line_with_one_prefix(args):
    result = cli(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("batchdeck: error: ")
    assert "batchdeck: error: batchdeck" not in result.stderr and "--help" in result.stderr


def _flags(parser: argparse.ArgumentParser, path: str = "batchdeck"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _flags(child, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_help_describes_the_tool_and_every_flag():
    parser = build_parser()
    assert "batch jobs" in parser.format_help().split("\n\n")[1]
    assert "``" not in parser.format_help()
    missing = [f"{path} {action.option_strings or action.dest}" for path, action in _flags(parser)
               if not action.help or action.help == argparse.SUPPRESS]
    # `sim` hands its own arguments to the simulator, which documents them
    assert missing == [], missing


def test_replay_of_a_batch_that_does_not_exist_says_so(mixed_failures):
    result = cli("replay", "1", "--batch", "999", "--db", str(mixed_failures), "--create-only")
    assert result.returncode == 2 and "run 1 has no batch 999" in result.stderr
    assert result.stderr.count("\n") == 1


def test_the_report_advises_replay_only_for_what_a_replay_can_cure(mixed_failures, tmp_path):
    report = cli("report", "1", "--db", str(mixed_failures)).stdout
    advice = report.split("## Recommendations", 1)[1]
    assert "`batchdeck replay 1 --where 'error=server'` retries them" in advice
    assert "client errors, which a replay as is repeats" in advice and "fix the input" in advice

    db = tmp_path / "client.db"
    cli("run", str(job_file(tmp_path, items=100, permanent_fail_rate=0.2)), "--db", str(db), "--headless")
    advice = cli("report", "1", "--db", str(db)).stdout.split("## Recommendations", 1)[1]
    assert "batchdeck replay" not in advice and "client errors" in advice


# ------------------------------------------------------------------------------------------- 8.8
async def _stored_run(db: Path, spec: dict, message: str) -> int:
    async with await Store.open(db) as store:
        run_id = await store.create_run("synthetic", spec, {})
        await store.write("UPDATE runs SET message=? WHERE id=?", (message, run_id))
        return run_id


HOSTILE = "\x1b]0;owned\x07[link=https://evil.example]click[/link]\x1b[2J"


def test_show_summarises_a_huge_spec_and_json_has_all_of_it(tmp_path):
    db = tmp_path / "show.db"
    entries = [["npm", f"pkg-{i}", ["1.0.0"], "list.csv"] for i in range(3000)]
    spec = {"targets": {"orgs": ["acme"]}, "iocs": {"sources": ["list.csv"], "entries": entries}, "match": "*"}
    asyncio.run(_stored_run(db, spec, HOSTILE))
    shown = cli("show", "1", "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    assert len(shown.stdout) < 2000 and max(len(line) for line in shown.stdout.splitlines()) < 200
    assert "entries: 3000 items" in shown.stdout and "sources: list.csv" in shown.stdout
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout and "␛]0;owned" in shown.stdout
    assert "--format json" in shown.stdout
    full = json.loads(cli("show", "1", "--db", str(db), "--format", "json").stdout)
    assert full["run"]["spec"]["iocs"]["entries"] == entries and full["run"]["message"] == HOSTILE
    assert set(full) >= {"run", "counts", "checkpoints", "artifacts", "audit"}


def test_show_puts_the_last_checkpoint_in_words(mixed_failures):
    shown = cli("show", "1", "--db", str(mixed_failures)).stdout
    line = next(line for line in shown.splitlines() if line.startswith("checkpoints:"))
    assert "of 400 done" in line and "failed" in line and "{" not in line


def test_runs_prints_messages_as_text_not_markup_or_escapes(tmp_path):
    db = tmp_path / "runs.db"
    asyncio.run(_stored_run(db, {}, HOSTILE))
    out = cli("runs", "--db", str(db)).stdout
    assert "\x1b" not in out and "[link=https://evil" in out


# ------------------------------------------------------------------------------- replay --where
def test_dry_run_counts_what_the_filter_shows_and_creates_nothing(mixed_failures):
    server = failed_by_class(mixed_failures, 1)["server"]
    result = cli("replay", "1", "--where", "error=server", "--dry-run", "--db", str(mixed_failures))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{len(server)} failed items of run 1 match error=server would be replayed")
    assert server[0] in result.stdout
    with sqlite3.connect(mixed_failures) as conn:
        assert conn.execute("SELECT count(*) FROM runs WHERE parent_id=1").fetchone()[0] == 0


def test_a_filtered_replay_holds_only_the_matching_items(mixed_failures):
    classes = failed_by_class(mixed_failures, 1)
    result = cli("replay", "1", "--where", "error=server", "--create-only", "--db", str(mixed_failures))
    assert result.returncode == 0, result.stderr
    child = int(result.stdout.strip())
    with sqlite3.connect(mixed_failures) as conn:
        keys = [r[0] for r in conn.execute("SELECT key FROM items WHERE run_id=? ORDER BY seq", (child,))]
        spec = json.loads(conn.execute("SELECT spec FROM runs WHERE id=?", (child,)).fetchone()[0])
    assert keys == classes["server"] and not set(keys) & set(classes["client"])
    assert spec["replay_of"] == {"run": 1, "batch": None, "where": "error=server"}
    first = classes["client"][0]
    narrowed = cli("replay", "1", "--where", f"error=client,key={first}", "--dry-run", "--db", str(mixed_failures))
    assert narrowed.stdout.startswith("1 failed items of run 1 match")


def test_a_filter_matching_nothing_is_refused(mixed_failures):
    result = cli("replay", "1", "--where", "error=auth", "--db", str(mixed_failures), "--headless")
    assert result.returncode == 2 and "no failed items matching 'error=auth'" in result.stderr


@pytest.mark.parametrize(("where", "needle"), [
    ("error=servr", "unknown error class 'servr'"),
    ("colour=red", "unknown field 'colour'"),
    ("error", "'error' is not field=value"),
    ("status=6xx", "status '6xx'"),
])
def test_a_bad_filter_is_one_line_exit_2(mixed_failures, where, needle):
    result = cli("replay", "1", "--where", where, "--dry-run", "--db", str(mixed_failures))
    assert result.returncode == 2 and needle in result.stderr and result.stderr.count("\n") == 1


# ------------------------------------------------------------------------------------------ audit
def test_cli_actions_are_in_the_audit_log_with_who_and_from_where(tmp_path):
    db = tmp_path / "audit.db"
    cli("run", str(job_file(tmp_path, items=50, permanent_fail_rate=0.2)), "--db", str(db), "--headless")
    child = int(cli("replay", "1", "--create-only", "--db", str(db)).stdout)   # pending: nobody runs it
    failed = len(failed_by_class(db, 1)["client"])
    for command in (("pause", str(child)), ("concurrency", str(child), "3"), ("cancel", str(child))):
        result = cli(*command, "--db", str(db))
        assert result.returncode == 0, result.stderr
    log = json.loads(cli("audit", "--db", str(db), "--format", "json").stdout)
    assert [(e["run_id"], e["action"], e["arg"]) for e in log] == [
        (1, "replay", f"run {child}: {failed} items"),
        (child, "pause", None), (child, "concurrency", "3"), (child, "cancel", None)]
    assert {e["origin"] for e in log} == {"cli"} and {e["user"] for e in log} == {getpass.getuser()}
    table = cli("audit", str(child), "--db", str(db)).stdout
    assert "concurrency" in table and "replay" not in table and getpass.getuser() in table

    second = int(cli("replay", "1", "--create-only", "--db", str(db)).stdout)
    cli("resume", str(second), "--db", str(db), "--headless")          # nobody runs it: it runs here
    log = json.loads(cli("audit", str(second), "--db", str(db), "--format", "json").stdout)
    assert [(e["action"], e["arg"], e["origin"]) for e in log] == [("resume", "in this process", "cli")]


class _GatedJob:
    """Items that wait for the test to open the gate: the run cannot end before the signal arrives."""

    kind = "gated"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.gate = asyncio.Event()

    def plan(self, spec, ctx):
        for i in range(3):
            yield PlannedItem(key=f"gated-{i}", payload={})

    async def process(self, item, ctx):
        self.started.set()
        await self.gate.wait()


def test_a_signal_is_in_the_audit_log(tmp_path, monkeypatch):
    job = _GatedJob()
    monkeypatch.setattr(engine_api, "load_kind", lambda name: JobKind(name, processor=lambda: job))

    async def scenario() -> tuple[int, list]:
        async with await Engine.open(tmp_path / "sig.db") as engine:
            run_id = await engine.create_run("gated", {})
            stopped = asyncio.create_task(drive(engine, run_id, argparse.Namespace(headless=True)))
            await job.started.wait()                    # drive has installed its signal handlers by now
            os.kill(os.getpid(), signal.SIGTERM)
            while not await entries(engine.store, run_id):
                await asyncio.sleep(0.01)               # the loop runs the handler; no deadline to race
            job.gate.set()
            return await stopped, await entries(engine.store, run_id)

    code, log = asyncio.run(scenario())
    assert code == 130
    assert [(e.action, e.arg, e.origin, e.user) for e in log] == [("stop", "SIGTERM", "signal", getpass.getuser())]


def test_quitting_the_console_that_runs_a_run_is_in_the_audit_log(tmp_path, monkeypatch):
    import console.app

    job = _GatedJob()
    monkeypatch.setattr(engine_api, "load_kind", lambda name: JobKind(name, processor=lambda: job))

    class _Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    async def scenario() -> tuple[int, list]:
        async with await Engine.open(tmp_path / "quit.db") as engine:
            run_id = await engine.create_run("gated", {})

            async def console_quit_at_once(*args, **kwargs) -> None:
                await job.started.wait()
                runner = engine.handles[run_id].runner

                async def open_gate_once_stopped() -> None:
                    await runner.wait()            # the stop drive() asks for after the console closed
                    job.gate.set()

                asyncio.get_running_loop().create_task(open_gate_once_stopped())

            monkeypatch.setattr(console.app, "run_console", console_quit_at_once)
            monkeypatch.setattr(sys, "stdout", _Terminal())
            code = await drive(engine, run_id, argparse.Namespace(headless=False))
            return code, await entries(engine.store, run_id)

    code, log = asyncio.run(scenario())
    assert code == 130
    assert [(e.action, e.arg, e.origin) for e in log] == [("stop", "console closed", "console")]
