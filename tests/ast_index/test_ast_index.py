"""ast-index end to end: one result or one error per file, re-runs, worker deaths,
kill and resume, a Dask LocalCluster, and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ast_helpers import counters, dump, run_index

from engine.jobs.ast_index.generate import EXCLUDE, SPECIAL_MAX_SIZE, generate_tree
from engine.jobs.ast_index.generate import source as generate_source
from engine.jobs.ast_index.job import build_spec

FILES = 300          # most tests: enough for a few dozen batches
MANY_FILES = 2500    # the exactly-once test: the "few thousand files"


def spec_for(tree: Path, **kw):
    options = {"exclude": EXCLUDE, "max_size": SPECIAL_MAX_SIZE, "order": "path", **kw}
    return build_spec(str(tree), **options)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    expected = generate_tree(str(root), FILES)
    return root, expected


def items(db, run_id, state=None):
    with sqlite3.connect(db) as conn:
        sql = "SELECT key, state, last_error, batch_id FROM items WHERE run_id=?"
        rows = conn.execute(sql + (" AND state=?" if state else ""), (run_id, state) if state else (run_id,))
        return rows.fetchall()


async def test_every_file_gives_exactly_one_result_or_one_error(tmp_path):
    root = tmp_path / "tree"
    expected = generate_tree(str(root), MANY_FILES)
    db = tmp_path / "index.db"
    spec = spec_for(root)
    run_id, state = await run_index(db, spec)
    assert state == "completed"
    tables = dump(db, spec["root"])
    status = {row[0]: row[6] for row in tables["files"]}
    assert status == expected.status                      # every file once; nothing ignored/excluded leaks in
    assert not set(expected.left_out) & set(status)
    rows = {row[0]: row for row in tables["files"]}
    for path, line in expected.error_line.items():
        assert rows[path][12] == line, path
    for path, depth in expected.min_depth.items():
        assert rows[path][8] >= depth, path
    for path in ("special/binary.py", "special/latin1.go", "special/huge.ts", "special/dangling.js"):
        assert rows[path][11], path                         # the reason is recorded
    symbols = {}
    for path, name, kind, _line, parent in tables["symbols"]:
        symbols.setdefault(path, set()).add((name, kind, parent))
    for path, wanted in expected.symbols.items():
        assert set(wanted) <= symbols[path], path
    imports = {}
    for path, module in tables["imports"]:
        imports.setdefault(path, []).append(module)
    for path, wanted in expected.imports.items():
        assert imports[path] == wanted, path
    # the engine agrees: one item per file, all done, none failed
    assert {k.removeprefix("file:") for k, *_ in items(db, run_id)} == set(expected.status)
    assert not items(db, run_id, "failed")


async def test_rerun_parses_only_what_changed(tree, tmp_path):
    root, expected = tree
    db = tmp_path / "index.db"
    spec = spec_for(root)
    await run_index(db, spec)
    first = dump(db, spec["root"])

    run_id, state = await run_index(db, spec)
    assert state == "completed"
    assert items(db, run_id) == []                               # nothing planned
    assert counters(db, run_id)["unchanged"] == len(expected.status)
    assert dump(db, spec["root"]) == first

    touched, edited, removed = root / "src/d00000/m000000.py", root / "src/d00000/m000004.py", \
        root / "src/d00000/m000001.js"
    os.utime(touched, ns=(time.time_ns(), time.time_ns() + 10**9))   # new mtime, same content
    edited.write_text("def brand_new():\n    pass\n")
    removed.unlink()
    run_id, state = await run_index(db, spec)
    assert sorted(k for k, *_ in items(db, run_id)) == ["file:src/d00000/m000000.py", "file:src/d00000/m000004.py"]
    assert counters(db, run_id)["unchanged_content"] == 1            # hashed, not parsed again
    after = dump(db, spec["root"])
    paths = {row[0] for row in after["files"]}
    assert "src/d00000/m000001.js" not in paths
    assert {(p, n) for p, n, *_ in after["symbols"] if p == "src/d00000/m000004.py"} == \
        {("src/d00000/m000004.py", "brand_new")}
    unchanged = [r for r in after["symbols"] if r[0] not in ("src/d00000/m000004.py", "src/d00000/m000001.js")]
    assert unchanged == [r for r in first["symbols"] if r[0] not in ("src/d00000/m000004.py",
                                                                     "src/d00000/m000001.js")]


@pytest.mark.parametrize("death", ["once", "kill_once"])     # exits with code 70 / killed by SIGKILL
async def test_a_worker_that_dies_once_costs_one_retried_batch(tree, tmp_path, death):
    root, expected = tree
    (root / "src/d00001/crash_here.py").write_text(death + "\n")
    db = tmp_path / "index.db"
    spec = spec_for(root, test_options={"crash_marker": "crash_here.py"})
    run_id, state = await run_index(db, spec)
    assert state == "completed"
    assert counters(db, run_id)["batches_retried"] == 1
    assert "batches_lost" not in counters(db, run_id)
    assert not items(db, run_id, "failed")
    status = {row[0]: row[6] for row in dump(db, spec["root"])["files"]}
    assert status == {**expected.status, "src/d00001/crash_here.py": "ok"}


async def test_a_batch_whose_worker_dies_twice_fails_its_files_only(tree, tmp_path):
    root, expected = tree
    (root / "src/d00001/crash_here.py").write_text("always\n")
    db = tmp_path / "index.db"
    spec = spec_for(root, test_options={"crash_marker": "crash_here.py"})
    run_id, state = await run_index(db, spec)
    assert state == "completed"
    assert (counters(db, run_id)["batches_retried"], counters(db, run_id)["batches_lost"]) == (1, 1)
    failed = items(db, run_id, "failed")
    assert "file:src/d00001/crash_here.py" in {k for k, *_ in failed}
    assert len({batch for *_, batch in failed}) == 1                 # one batch, nobody else's
    assert all("exited with code 70" in error and "twice" in error for _, _, error, _ in failed)
    indexed = {row[0] for row in dump(db, spec["root"])["files"]}
    assert not indexed & {k.removeprefix("file:") for k, *_ in failed}
    assert indexed | {k.removeprefix("file:") for k, *_ in failed} == {*expected.status, "src/d00001/crash_here.py"}


async def test_kill_and_resume_gives_the_table_of_an_uninterrupted_run(tree, tmp_path):
    root, _ = tree
    hold = root / "src/zz_last/hold.py"          # the last directory: its batch is the last one
    hold.parent.mkdir()
    hold.write_text("held = True\n")
    spec = spec_for(root, test_options={"hold_marker": "hold.py"})
    killed_db = tmp_path / "killed.db"
    helper = Path(__file__).with_name("ast_helpers.py")
    child = subprocess.Popen([sys.executable, str(helper), str(killed_db), json.dumps(spec)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # the held batch cannot finish, so the run is mid-flight whenever we look
        done_batches = 0
        while done_batches < 5:
            assert child.poll() is None, "the run ended although a batch was held"
            await asyncio.sleep(0.05)
            if killed_db.exists():
                try:
                    with sqlite3.connect(killed_db) as conn:
                        done_batches = conn.execute("SELECT count(*) FROM batches WHERE state='done'").fetchone()[0]
                except sqlite3.OperationalError:
                    pass          # schema not created yet
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with sqlite3.connect(killed_db) as conn:
        run_id = conn.execute("SELECT id FROM runs").fetchone()[0]
        done_before = conn.execute("SELECT id, updated_at FROM items WHERE state='done'").fetchall()
        total = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    assert 0 < len(done_before) < total

    Path(str(hold) + ".release").touch()
    _, state = await run_index(killed_db, spec, run_id=run_id)
    assert state == "completed"
    with sqlite3.connect(killed_db) as conn:
        still = dict(conn.execute("SELECT id, updated_at FROM items WHERE state='done'").fetchall())
    assert len(still) == total
    assert all(still[item_id] == updated for item_id, updated in done_before)   # not parsed again

    straight_db = tmp_path / "straight.db"
    await run_index(straight_db, spec)
    assert dump(killed_db, spec["root"]) == dump(straight_db, spec["root"])


async def test_a_dask_local_cluster_builds_the_same_table(tree, tmp_path):
    import distributed

    root, _ = tree
    spec = spec_for(root)
    local_db, dask_db = tmp_path / "local.db", tmp_path / "dask.db"
    await run_index(local_db, spec)
    async with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, asynchronous=True,
                                        dashboard_address=None) as cluster, \
            distributed.Client(cluster, asynchronous=True) as client:
        _, state = await run_index(dask_db, spec, executor=client)
    assert state == "completed"
    assert dump(dask_db, spec["root"]) == dump(local_db, spec["root"])


def test_cli_index_export_and_query(tmp_path, capsys):
    from console.cli import main

    root = tmp_path / "tree"
    expected = generate_tree(str(root), 40)
    db, out = tmp_path / "cli.db", tmp_path / "index.csv"
    code = main(["index", str(root), "--db", str(db), "--headless", "--workers", "2", "--exclude", "vendor/",
                 "--max-size", str(SPECIAL_MAX_SIZE), "--format", "csv", "-o", str(out)])
    assert code == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("path,language,status")
    assert len(lines) == 1 + len(expected.status)               # a header, then one row per file
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    capsys.readouterr()

    assert main(["index", str(root), "--db", str(db), "--query", "Widget3"]) == 0
    text = capsys.readouterr().out
    assert "src/d00000/m000003.go:9  struct" in text
    assert main(["index", str(root), "--db", str(db), "--query", "fmt", "--format", "jsonl"]) == 0
    answers = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {a["path"] for a in answers if a["type"] == "import"} >= {"src/d00000/m000003.go",
                                                                     "src/d00000/m000007.go"}
    assert main(["index", str(tmp_path / "nope"), "--db", str(db)]) == 2
    assert "nope: not a directory" in capsys.readouterr().err


def test_discovery_honours_nested_gitignores_and_excludes(tmp_path):
    from engine.jobs.ast_index.discovery import compile_patterns, walk

    for rel in ("a.py", "gen/x.py", "pkg/keep.py", "pkg/skip_me.py", "pkg/sub/deep.go", "pkg/sub/notes.txt",
                "third/t.js", ".git/hooks/h.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    (tmp_path / ".gitignore").write_text("gen/\n")
    (tmp_path / "pkg/.gitignore").write_text("skip_*.py\n")
    found = [f.path for d in walk(str(tmp_path), exclude=compile_patterns(["third/"], "--exclude"))
             for f in d.files]
    assert found == ["a.py", "pkg/keep.py", "pkg/sub/deep.go"]


@pytest.mark.parametrize("order", ["size", "language"])
async def test_batches_follow_the_chosen_order(tmp_path, order):
    root = tmp_path / "tree"
    for i in range(120):
        ext = ("py", "js", "ts", "go")[i % 4]
        path = root / f"d{i % 3}" / f"f{i}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generate_source(ext, i, funcs=1 + (i * 7) % 9))
    db = tmp_path / "index.db"
    spec = spec_for(root, order=order)
    run_id, state = await run_index(db, spec)
    assert state == "completed"
    rank = {"python": 0, "typescript": 1, "tsx": 2, "javascript": 3, "go": 4}
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT i.batch_id, f.size, f.language FROM items i JOIN ast_files f "
                            "ON f.path = substr(i.key, 6) WHERE i.run_id=? ORDER BY i.batch_id", (run_id,)).fetchall()
    batches: dict[int, list] = {}
    for batch, size, language in rows:
        batches.setdefault(batch, []).append(-size if order == "size" else rank[language])
    keys = [batches[b] for b in sorted(batches)]
    assert len(keys) > 3
    for earlier, later in zip(keys, keys[1:], strict=False):
        assert max(earlier) <= min(later)       # every file of a batch comes before every file of the next


def test_cli_resumes_an_unfinished_run_with_the_same_options_only(tmp_path, capsys):
    from console.cli import main

    root = tmp_path / "tree"
    generate_tree(str(root), 20, specials=False)
    db = tmp_path / "cli.db"
    spec = build_spec(str(root))
    unfinished = asyncio.run(_create_only(db, spec))   # created, never run: pending
    assert main(["index", str(root), "--db", str(db), "--headless", "--workers", "2"]) == 0
    err = capsys.readouterr().err
    assert f"run {unfinished} resumed" in err
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT state FROM runs WHERE id=?", (unfinished,)).fetchone()[0] == "completed"
        assert conn.execute("SELECT count(*) FROM ast_files").fetchone()[0] == 20

    other = asyncio.run(_create_only(db, build_spec(str(root), order="mtime")))
    (root / "src/d00000/m000000.py").write_text("def changed():\n    pass\n")
    assert main(["index", str(root), "--db", str(db), "--headless", "--workers", "2"]) == 0
    err = capsys.readouterr().err
    assert f"run {other} of this directory is pending but was started with other options" in err
    assert "19 unchanged file(s) skipped" in err              # the new run parsed the one changed file


async def _create_only(db, spec):
    from ast_helpers import config

    from engine.api import Engine

    async with await Engine.open(db, config()) as engine:
        return await engine.create_run("ast-index", spec, config())
