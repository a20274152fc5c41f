"""The database file: private modes, bad files, refused writes (disk full, read-only)."""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import stat
from pathlib import Path

import pytest

import engine.store as store_module
from engine.api import Engine
from engine.errors import InputError
from engine.models import RunState
from engine.store import Store

from .conftest import fast_config


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_database_and_its_wal_and_shm_are_private_under_umask_022(tmp_path, umask_022):
    db = tmp_path / "new.db"
    async with await Engine.open(db, fast_config()) as eng:
        await eng.create_run("synthetic", {"items": 3})
        wal, shm = db.with_name("new.db-wal"), db.with_name("new.db-shm")
        assert wal.exists() and shm.exists()
        assert (mode(db), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)


async def test_an_existing_world_readable_database_of_ours_is_narrowed(tmp_path, umask_022):
    db = tmp_path / "old.db"
    sqlite3.connect(db).close()
    db.chmod(0o644)
    async with await Engine.open(db, fast_config()):
        assert mode(db) == 0o600


@pytest.mark.parametrize("value,needle", [("99", "newer batchdeck"), ("two", "schema_version")])
async def test_a_database_from_a_newer_batchdeck_or_with_garbage_version_is_one_line_and_closed(
        tmp_path, value, needle, monkeypatch):
    db = tmp_path / "bad.db"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);")
        conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (value,))
    closed = []
    real_connect = store_module._connect

    async def connect(path, **kw):
        conn = await real_connect(path, **kw)
        real_close = conn.close

        async def close():
            closed.append(path)
            await real_close()
        conn.close = close
        return conn

    monkeypatch.setattr(store_module, "_connect", connect)
    with pytest.raises(InputError) as caught:
        await Store.open(db)
    assert needle in str(caught.value) and str(db) in str(caught.value)
    assert "\n" not in str(caught.value)
    assert closed                                  # no aiosqlite thread left to hang the process
    with sqlite3.connect(db) as conn:              # and the file was not touched
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["meta", "sqlite_autoindex_meta_1"]


async def test_a_new_database_on_a_read_only_filesystem_is_one_line(tmp_path, monkeypatch):
    def refuse(*args, **kw):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store_module.os, "open", refuse)
    with pytest.raises(InputError, match=r"cannot create database \(read-only\)"):
        await Store.open(tmp_path / "ro.db")


async def test_a_valid_read_only_database_opens_for_reading_and_refuses_writes_as_read_only(tmp_path, monkeypatch):
    db = tmp_path / "valid.db"
    async with await Engine.open(db, fast_config()) as eng:
        run_id = await eng.create_run("synthetic", {"items": 3})
    real_connect = store_module._connect

    async def read_only_media(path, *, readonly=False):   # root ignores modes: the medium refuses instead
        return await real_connect(path, readonly=True)

    monkeypatch.setattr(store_module, "_connect", read_only_media)
    async with await Engine.open(db, fast_config()) as eng:
        assert eng.store.readonly
        assert [r.id for r in await eng.runs()] == [run_id]
        with pytest.raises(InputError) as caught:
            await eng.create_run("synthetic", {"items": 1})
    assert "read-only" in str(caught.value) and "corrupt" not in str(caught.value)


async def test_a_full_disk_mid_run_stops_it_with_one_line_and_it_resumes_with_each_item_once(tmp_path):
    db = tmp_path / "full.db"
    gate, held = asyncio.Event(), asyncio.Event()
    eng = await Engine.open(db, fast_config())
    try:
        run_id = await eng.create_run("synthetic", {"items": 3000, "hold_from": 1000})
        handle = await eng.start(run_id, services={"gate": gate, "held": held})
        await held.wait()
        await handle.runner.recorder.flush()
        pages = (await eng.store.fetchone("PRAGMA page_count"))[0]
        await eng.store.fetchone(f"PRAGMA max_page_count={pages}")     # the disk is full from here on
        gate.set()
        with pytest.raises(InputError) as caught:
            await asyncio.wait_for(handle.wait(), 60)
        assert "disk is full" in str(caught.value) and "\n" not in str(caught.value)
        assert [r.state for r in await eng.runs()] != [RunState.RUNNING]   # listing works, no traceback
    finally:
        await eng.close()
    async with await Engine.open(db, fast_config()) as eng:     # space again
        runs = await eng.runs()
        assert runs[0].state in (RunState.PAUSED, RunState.INTERRUPTED)
        resumed = await eng.start(run_id, services={"gate": gate})
        assert await resumed.wait() is RunState.COMPLETED
        assert await eng.store.fetchall("SELECT count(*), count(DISTINCT key) FROM items WHERE run_id=? AND "
                                        "state='done'", (run_id,)) == [(3000, 3000)]
        assert (await eng.store.fetchone("PRAGMA integrity_check"))[0] == "ok"
