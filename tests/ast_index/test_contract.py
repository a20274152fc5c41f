"""ast-index on the job-kind contract: its config section, its tables as migrations, what
``resume`` and ``replay`` of an index run print and exit with, and its report section."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest
from ast_helpers import config, run_index

from console.cli import main
from engine.api import Engine
from engine.jobs.ast_index.generate import generate_tree
from engine.jobs.ast_index.job import build_spec
from engine.jobs.ast_index.kind import KIND


def run_row(db, run_id=None):
    with sqlite3.connect(db) as conn:
        sql = "SELECT id, spec, config, state FROM runs " + ("WHERE id=?" if run_id else "ORDER BY id DESC LIMIT 1")
        return conn.execute(sql, (run_id,) if run_id else ()).fetchone()


def test_the_config_section_layers_file_env_and_flags(tmp_path, monkeypatch, capsys):
    root = tmp_path / "tree"
    generate_tree(str(root), 8, specials=False)
    cfg = tmp_path / "batchdeck.yaml"
    cfg.write_text("ast_index:\n  order: language\n  workers: 1\n  batch:\n    max_files: 70\n")
    monkeypatch.setenv("BATCHDECK_AST_INDEX_MAX_FILE_SIZE", "4096")
    db = tmp_path / "index.db"
    assert main(["index", str(root), "--db", str(db), "--headless", "--config", str(cfg), "--order", "mtime"]) == 0
    _, spec, stored, state = run_row(db)
    spec, stored = json.loads(spec), json.loads(stored)
    assert state == "completed"
    assert (spec["order"], spec["max_size"]) == ("mtime", 4096)       # flag over file; env over default
    assert stored["ast_index"]["workers"] == 1 and stored["ast_index"]["batch"]["max_files"] == 70
    assert "parsing on 1 local worker processes" in capsys.readouterr().err


@pytest.mark.parametrize(("yaml", "flags", "needle"), [
    ("ast_index:\n  batch:\n    min_files: 600\n    max_files: 500\n", [],
     "ast_index.batch.min_files = 600 is greater than ast_index.batch.max_files = 500"),
    ("ast_index:\n  workers: many\n", [], "ast_index.workers"),
    ("ast_index:\n  order: random\n", [], "ast_index.order"),
    ("", ["--executor", "tcp://scheduler:8786"], "ast_index.executor = 'tcp://scheduler:8786'"),
    ("ast_index:\n  exclude: vendor/\n", [], "ast_index.exclude = 'vendor/': not a list of non-empty strings"),
    ("ast_index:\n  exclude: [vendor/, 3]\n", [], "ast_index.exclude = ['vendor/', 3]"),
    ("ast_index:\n  exclude: [vendor/, '  ']\n", [], "ast_index.exclude"),
])
def test_bad_settings_are_one_line_errors_before_anything_runs(tmp_path, capsys, yaml, flags, needle):
    root = tmp_path / "tree"
    generate_tree(str(root), 2, specials=False)
    cfg = tmp_path / "batchdeck.yaml"
    cfg.write_text(yaml or "{}\n")
    db = tmp_path / "index.db"
    assert main(["index", str(root), "--db", str(db), "--headless", "--config", str(cfg), *flags]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not db.exists() or run_row(db) is None


def test_exclude_patterns_come_from_the_config_and_the_flags_together(tmp_path, monkeypatch, capsys):
    root = tmp_path / "tree"
    generate_tree(str(root), 4, specials=False)
    for rel in ("vendor/dep.go", "build/out.py", "gen/x.min.js", "tools/t.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x = 1\n")
    cfg = tmp_path / "batchdeck.yaml"
    cfg.write_text('ast_index:\n  exclude:\n    - vendor/\n    - "*.min.js"\n')
    db = tmp_path / "index.db"
    assert main(["index", str(root), "--db", str(db), "--headless", "--config", str(cfg), "--exclude", "build/"]) == 0
    with sqlite3.connect(db) as conn:
        indexed = {path for (path,) in conn.execute("SELECT path FROM ast_files")}
    assert "tools/t.py" in indexed and len(indexed) == 5
    assert not indexed & {"vendor/dep.go", "build/out.py", "gen/x.min.js"}
    assert json.loads(run_row(db)[1])["exclude"] == ["vendor/", "*.min.js", "build/"]
    # the variable replaces the file's list (a layer wins whole), comma-separated
    monkeypatch.setenv("BATCHDECK_AST_INDEX_EXCLUDE", "tools/, gen/")
    db2 = tmp_path / "index2.db"
    assert main(["index", str(root), "--db", str(db2), "--headless", "--config", str(cfg)]) == 0
    with sqlite3.connect(db2) as conn:
        indexed = {path for (path,) in conn.execute("SELECT path FROM ast_files")}
    assert "vendor/dep.go" in indexed and "build/out.py" in indexed
    assert not indexed & {"tools/t.py", "gen/x.min.js"}


def test_an_unreachable_dask_scheduler_is_one_line_before_a_run_exists(tmp_path, capsys):
    import socket

    with socket.socket() as free:              # a port nobody listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    root = tmp_path / "tree"
    generate_tree(str(root), 2, specials=False)
    db = tmp_path / "index.db"
    assert main(["index", str(root), "--db", str(db), "--headless", "--executor", f"dask://127.0.0.1:{port}"]) == 2
    assert "cannot reach the Dask scheduler" in capsys.readouterr().err
    assert not db.exists() or run_row(db) is None


def test_resume_and_replay_of_an_index_run_print_the_index_and_exit_by_it(tmp_path, capsys):
    root = tmp_path / "tree"
    generate_tree(str(root), 30, specials=False)
    crash = root / "src/d00000/crash_here.py"
    crash.write_text("always\n")
    db = tmp_path / "index.db"
    spec = build_spec(str(root), test_options={"crash_marker": "crash_here.py"})

    async def create():
        async with await Engine.open(db, config()) as engine:
            return await engine.create_run(KIND, spec, config(workers=2))

    run_id = asyncio.run(create())
    # resumed here (never started): its worker dies twice on one batch -> files NOT indexed, exit 1
    assert main(["resume", str(run_id), "--db", str(db), "--headless"]) == 1
    err = capsys.readouterr().err
    assert f"index of {root}" in err and "NOT indexed" in err and "crash_here.py" in err
    assert f"batchdeck replay {run_id}" in err

    crash.write_text("once\n")                       # ...and it has crashed already: parses now
    (root / "src/d00000/crash_here.py.crashed").touch()
    assert main(["replay", str(run_id), "--db", str(db), "--headless"]) == 0
    err = capsys.readouterr().err
    assert "NOT indexed" not in err and "31 files" in err
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM ast_files WHERE path='src/d00000/crash_here.py'").fetchone() == \
            ("ok",)

    # the report of the first run: the files it could not index, and the index as it now stands
    assert main(["report", str(run_id), "--db", str(db), "--format", "json"]) == 0
    section = json.loads(capsys.readouterr().out)["sections"]["ast_index"]
    assert section["files"] == 31 and sum(section["by_language"].values()) == 31
    assert [f["path"] for f in section["failed"]] and all("twice" in f["reason"] for f in section["failed"])


async def test_the_tables_come_from_the_kinds_migrations_and_the_report_has_its_section(tmp_path):
    root = tmp_path / "tree"
    generate_tree(str(root), 40, specials=False)
    (root / "bad\x1b[2J.py").write_text("def broken(:\n")
    db = tmp_path / "index.db"
    run_id, state = await run_index(db, build_spec(str(root)))
    assert state == "completed"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key='kind.ast-index.schema'").fetchone() == ("1",)
    async with await Engine.open(db, config()) as engine:
        [section] = await KIND.report(engine.store, run_id)
    assert section.key == "ast_index"
    data = section.data
    assert data["files"] == 41 and data["by_language"] == {"python": 11, "javascript": 10, "typescript": 10,
                                                            "go": 10}
    assert data["files_per_s"] > 0 and 0 < data["cpu_efficiency"] <= 1
    assert [e["path"] for e in data["errors"]] == ["bad\x1b[2J.py"] and data["errors"][0]["line"] == 1
    assert sum(w["files"] for w in data["workers"]) == 41
    assert "bad␛[2J.py" in section.markdown and "\x1b" not in section.markdown


def test_the_processor_takes_whole_batches_and_sizes_them_itself():
    from engine.processor import BatchProcessor, SizesItsBatches

    processor = KIND.processor()
    assert isinstance(processor, BatchProcessor) and isinstance(processor, SizesItsBatches)
    assert processor.batch_lanes == frozenset({"parse"})
    assert processor.next_batch_size(7) == 50                   # the default min_files until it has timed one
    processor.sizing.observe(100, 0.05)                         # 0.5 ms a file -> 0.5 s is 1,000 files
    assert processor.next_batch_size(7) == 500                  # ...capped at max_files
