"""The bad-database corpus: each file is one way a database can be wrong. Every command
on it prints one line naming the file, exits 2 and never hangs (the aiosqlite thread of
a failed open used to keep the process alive forever) and never says "corrupt" of a
valid database it may only read."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

# root ignores file modes, so read-only media are simulated where SQLite and the OS meet
READ_ONLY_MEDIA = """
import errno, os, sys
import engine.store as store
real_connect = store._connect
async def connect(path, *, readonly=False):
    return await real_connect(path, readonly=True)
def refuse(path, *a, **kw):
    if os.path.exists(path):     # as Linux does for O_CREAT|O_EXCL on read-only media
        raise FileExistsError(errno.EEXIST, "File exists", str(path))
    raise OSError(errno.EROFS, "Read-only file system", str(path))
store._connect = connect
store.os = type("os", (), {**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")}, "open": refuse})
from console.cli import main
sys.exit(main(sys.argv[1:]))
"""


def batchdeck(*args: str, read_only_media: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", READ_ONLY_MEDIA] if read_only_media else [sys.executable, "-m", "console.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


def with_meta(path: Path, version: str) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (version,))
    return path


def valid(path: Path) -> Path:
    assert batchdeck("runs", "--db", str(path)).returncode == 0
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO runs (kind, state, spec, config, created_at) VALUES "
                         "('synthetic', 'completed', '{}', '{}', 0)", [()] * 2000)
    return path


def newer_version(tmp: Path) -> Path:
    return with_meta(tmp / "newer.db", "99")


def garbage_schema_version(tmp: Path) -> Path:
    return with_meta(tmp / "garbage.db", "two\x1b[2J")


def truncated_file(tmp: Path) -> Path:
    path = valid(tmp / "truncated.db")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def not_a_database(tmp: Path) -> Path:
    path = tmp / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    return path


def a_directory(tmp: Path) -> Path:
    path = tmp / "dir.db"
    path.mkdir()
    return path


@pytest.mark.parametrize("make,needle", [
    (newer_version, "newer batchdeck"),
    (garbage_schema_version, "schema_version"),
    (truncated_file, "corrupt"),
    (not_a_database, "not a batchdeck database"),
    (a_directory, "directory"),
])
def test_a_bad_database_is_one_line_exit_2_no_hang(tmp_path, make, needle):
    db = make(tmp_path)
    for command in (["runs"], ["show", "1"], ["report", "1"]):
        result = batchdeck(*command, "--db", str(db))
        assert result.returncode == 2, (command, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert str(db) in lines[0] and needle in lines[0]
        assert "\x1b" not in lines[0]


def test_a_valid_database_on_read_only_media_reads_and_refuses_writes_as_read_only(tmp_path):
    db = valid(tmp_path / "ro.db")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET state='interrupted' WHERE id=1")
    listed = batchdeck("runs", "--db", str(db), "--format", "json", read_only_media=True)
    assert listed.returncode == 0, listed.stderr
    job = tmp_path / "job.yaml"
    job.write_text("kind: synthetic\nspec: {items: 3}\n")
    result = batchdeck("run", str(job), "--db", str(db), "--headless", read_only_media=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "read-only" in lines[0] and "corrupt" not in lines[0], result.stderr
    resumed = batchdeck("resume", "1", "--db", str(db), "--headless", read_only_media=True)
    assert resumed.returncode == 2 and "read-only" in resumed.stderr, resumed.stderr
    assert len(resumed.stderr.strip().splitlines()) == 1 and "Traceback" not in resumed.stderr


def test_a_new_database_on_read_only_media_is_one_line_exit_2(tmp_path):
    result = batchdeck("runs", "--db", str(tmp_path / "new.db"), read_only_media=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "read-only" in lines[0] and "Traceback" not in result.stderr, result.stderr
