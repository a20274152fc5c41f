"""The secrets sweep: a canary token goes in through every door a user has, and must come out
of none — not the database (every table, its -wal and -shm), the exports (JSON, CSV, SARIF,
Markdown), the report, artifacts, stdout/stderr, the audit log or the console's screens.

Doors: ``--token ghp_CANARY...``, ``GITHUB_TOKEN``, and credentials in ``--api-url``
(``http://user:canary@host``), for ``scan`` and ``sync``. The sweep itself is checked
against a planted canary (in a table row still in the WAL, and in a file), so a
sweep that finds nothing because it looks nowhere fails too.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from console.app import BatchdeckApp
from engine.api import Engine
from engine.config import load_config
from engine.jobs.ioc_scan.scan import DEFAULT_IOCS
from tests.loopback import loopback_simulator

ROOT = Path(__file__).parents[2]
CANARY = "ghp_CANARY7q9XwZ3mK8vR2nT5yL1pH4dF6sJ0aB"            # the shape of a classic PAT
URL_SECRET = "canaryURLsecret9f3b2e"
NEEDLES = (CANARY, CANARY[4:], URL_SECRET)
PLANNING = ROOT / "sample_configs" / "planning"


def sweep(paths: list[Path], texts: dict[str, str]) -> list[str]:
    """Where any needle appears: raw bytes of every file (a database, its -wal and -shm
    included: every table, free pages too), each table's rows as SQL, and captured texts."""
    hits = []
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file()]
    for f in files:
        data = f.read_bytes()
        hits += [f"{f.name}: {n[:12]}…" for n in NEEDLES if n.encode() in data]
        if data.startswith(b"SQLite format 3"):
            copy = f.with_name(f.name + ".sweep")      # with its WAL: what a reader of the file sees
            shutil.copy(f, copy)
            if Path(f"{f}-wal").exists():
                shutil.copy(f"{f}-wal", f"{copy}-wal")
            with sqlite3.connect(copy) as conn:
                dump = "\n".join(conn.iterdump())
            for leftover in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
                leftover.unlink(missing_ok=True)
            hits += [f"{f.name} (rows): {n[:12]}…" for n in NEEDLES if n in dump]
    for where, text in texts.items():
        hits += [f"{where}: {n[:12]}…" for n in NEEDLES if n in text]
    return hits


def batchdeck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "GH_TOKEN")}
    return subprocess.run([sys.executable, "-m", "console.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env={**clean, "BATCHDECK_TIME_SCALE": "0.002", **(env or {})})


# One child runs the read-only commands in turn (each its own main(), its own output captured): the
# sweep reads the same stdout/stderr as from one process each, without paying twenty interpreter starts
# with the engine's imports. What escapes the per-command capture lands in the child's own output, swept too.
READ_ONLY_DRIVER = """
import contextlib, io, json, sys
from console.cli import main
results = []
for argv in json.loads(sys.stdin.read()):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    results.append([out.getvalue(), err.getvalue(), code])
with open(sys.argv[1], "w") as f:
    json.dump(results, f)
"""


def batchdeck_read_only(commands: list[list[str]], results: Path) -> tuple[list[tuple[str, str]], str]:
    """Each command's (stdout, stderr), and whatever else the child printed."""
    clean = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "GH_TOKEN")}
    child = subprocess.run([sys.executable, "-c", READ_ONLY_DRIVER, str(results)], input=json.dumps(commands),
                           capture_output=True, text=True, cwd=ROOT, timeout=300, env=clean)
    assert child.returncode == 0, child.stderr[-2000:]
    outputs = [(out, err) for out, err, _code in json.loads(results.read_text())]
    assert len(outputs) == len(commands)
    return outputs, child.stdout + child.stderr


def small_planning_tree(root: Path) -> Path:
    (root / "prds").mkdir(parents=True)
    shutil.copy(PLANNING / "prds" / "platform.md", root / "prds")
    epic = root / "epics" / "auth"
    epic.mkdir(parents=True)
    shutil.copy(PLANNING / "epics" / "auth" / "epic.md", epic)
    for task in ("001.md", "002.md"):
        text = (PLANNING / "epics" / "auth" / task).read_text()
        (epic / task).write_text("\n".join(line for line in text.splitlines() if not line.startswith("depends_on")))
    return root


async def screens(db: Path, run_id: int) -> dict[str, str]:
    """The console's main screen, findings view and audit screen, as the SVG text Textual exports."""
    out = {}
    async with await Engine.open(db, load_config(None, env={})) as engine:
        app = BatchdeckApp(engine, run_id=run_id, readonly=True)
        async with app.run_test(size=(160, 50)) as pilot:
            for _ in range(3):
                await pilot.app.workers.wait_for_complete()
                await pilot.pause()
            out["console main"] = app.export_screenshot()
            for key, name in (("f", "findings"), ("a", "audit")):
                await pilot.press(key)
                for _ in range(3):
                    await pilot.app.workers.wait_for_complete()
                    await pilot.pause()
                out[f"console {name}"] = app.export_screenshot()
                assert type(app.screen).__name__.lower().startswith(name), type(app.screen).__name__
                await pilot.press("escape")
                await pilot.pause()
    return out


async def test_a_canary_token_reaches_no_database_export_report_output_or_screen(tmp_path):
    db, out = tmp_path / "sweep.db", tmp_path / "out"
    out.mkdir()
    texts: dict[str, str] = {}
    with loopback_simulator("--repos", "6", "--seed", "4", "--time-scale", "0.002") as url:
        secret_url = url.replace("http://", f"http://someone:{URL_SECRET}@")
        doors = [
            ("scan --token", ["--token", CANARY], None, url),
            ("scan GITHUB_TOKEN", [], {"GITHUB_TOKEN": CANARY}, url),
            ("scan --api-url user:secret", [], None, secret_url),
        ]
        for i, (door, token_args, env, api_url) in enumerate(doors, 1):
            fmt = ("json", "sarif", "csv")[i - 1]
            result = batchdeck("scan", "--headless", "--org", "acme", "--iocs", str(DEFAULT_IOCS),
                               "--api-url", api_url, *token_args,
                               "--db", str(db), "--format", fmt, "-o", str(out / f"scan{i}.{fmt}"), env=env)
            assert result.returncode in (0, 1), (door, result.stderr[-2000:])
            texts[f"{door} stdout"], texts[f"{door} stderr"] = result.stdout, result.stderr
        plans = small_planning_tree(tmp_path / "plans")
        for door, args, env in (("sync --token", ["--token", CANARY], None),
                                ("sync --api-url user:secret", [], None)):
            api_url = secret_url if "api-url" in door else url
            result = batchdeck("sync", str(plans), "--repo", "acme/" + "acme-monorepo", "--api-url", api_url, *args,
                               "--db", str(db), "--export-sync-map", str(out / f"map-{len(texts)}.json"), env=env)
            texts[f"{door} stdout"], texts[f"{door} stderr"] = result.stdout, result.stderr
            assert result.returncode in (0, 1), (door, result.stderr[-2000:])
    runs = batchdeck("runs", "--db", str(db))
    texts["runs"] = runs.stdout + runs.stderr
    run_ids = [int(line.split()[0]) for line in runs.stdout.splitlines() if line.split() and line.split()[0].isdigit()]
    assert len(run_ids) >= 5, runs.stdout
    read_only = [args for run_id in run_ids
                 for args in (["show", str(run_id), "--format", "json"], ["audit", str(run_id)],
                              ["report", str(run_id), "-o", str(out / f"report{run_id}.md")])]
    read_only += [["findings", "1", "--format", fmt, "-o", str(out / f"findings.{fmt}")]
                  for fmt in ("json", "csv", "sarif", "table")]
    outputs, texts["read-only commands' process"] = batchdeck_read_only(
        [[*a, "--db", str(db)] for a in read_only], tmp_path / "read-only.json")
    for args, (stdout, stderr) in zip(read_only, outputs, strict=True):
        texts[" ".join(args)] = stdout + stderr
    assert all(f"report{run_id}.md" in os.listdir(out) for run_id in run_ids)
    texts.update(await screens(db, 3))
    assert (out / "findings.json").stat().st_size > 0 and "acme" in texts["console findings"]
    assert sweep([tmp_path], texts) == []


def test_the_sweep_finds_a_planted_canary_in_the_wal_and_in_files(tmp_path):
    db = tmp_path / "planted.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE runs (spec TEXT)")
    conn.commit()
    conn.execute("INSERT INTO runs VALUES (?)", (f'{{"api_url": "http://u:{URL_SECRET}@h"}}',))
    conn.commit()                          # in the -wal only, the main file untouched
    assert URL_SECRET.encode() not in db.read_bytes()
    assert sweep([tmp_path], {}) != []
    conn.close()
    (tmp_path / "export.csv").write_text(f"token,{CANARY}\n")
    assert any("export.csv" in hit for hit in sweep([tmp_path], {"stdout": "clean"}))
    assert sweep([], {"stderr": f"Bearer {CANARY[4:]}"}) != []
