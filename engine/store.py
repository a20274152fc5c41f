"""SQLite persistence: one file holds every run, item, batch, checkpoint and artifact.

Why it looks like this:

* WAL journal and ``synchronous=NORMAL`` so readers (the console, another
  process attached to the run) never block the writer and a commit costs a
  WAL append, not an fsync per transaction.
* The engine writes through exactly one :class:`~engine.recorder.Recorder`
  which commits in batches with ``executemany``; this module only offers the
  statements and the reads. A transaction per item through aiosqlite costs
  about ten times as much.
* Reads that can grow without bound (runs, batches, items of a batch,
  findings) are keyset-paged so a 100,000-item run never loads whole.
* Batches are numbered per run (``(run_id, id)``): the engine allocates the
  numbers in memory without a round trip, and an operator says "batch 12 of
  run 3".
* The file holds cached API response bodies and findings: it is created 0600
  (SQLite gives its -wal and -shm files the database file's mode), and an
  existing database we own that others may read is narrowed to 0600 when opened.
* Opening never leaves a connection (and its aiosqlite thread, which would keep
  the process alive) behind when it fails, and every failure is one
  :class:`~engine.errors.InputError` line: a database from a newer batchdeck,
  a garbled ``schema_version``, a file that is not a database, a read-only
  database (opened read-only instead when it is valid: reading commands work,
  writing ones say "read-only", never "corrupt").
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import sqlite3
import stat
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import aiosqlite

from engine.errors import InputError
from engine.events import ControlCommand, parse_command
from engine.models import BatchState, BatchView, Counts, MetricSample, RunInfo, RunState
from engine.store_rows import (
    ARTIFACT_INSERT_SQL,
    CONTROL_CONSUMED_SQL,
    CONTROL_INSERT_SQL,
    CONTROL_PENDING_SQL,
    FAILED_COLUMNS,
    ITEM_INSERT_SQL,
    LAST_STATUS_SQL,
    PENDING_COLUMNS,
    RUN_STARTED_SQL,
    RUN_UNOWNED_SQL,
    ControlRow,
    FailedItem,
    NewItem,
    PendingItem,
    ReportFigures,
)

SCHEMA_VERSION = 3

#: operator actions (engine/audit.py): who, when, from where
AUDIT_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, at REAL NOT NULL, "
    "action TEXT NOT NULL, arg TEXT, origin TEXT NOT NULL, user TEXT NOT NULL, host TEXT, pid INTEGER)"
)
AUDIT_INDEX_SQL = "CREATE INDEX IF NOT EXISTS audit_run ON audit (run_id, id)"

#: forward migrations: schema version reached -> statements that reach it from the one before.
#: (Step 2 upgrades ioc-scan tables that were core tables then; a job kind's tables are now its
#: own, created and upgraded from ``JobKind.migrations`` by :meth:`Store._migrate_kinds`.)
MIGRATIONS: dict[int, list[str]] = {
    2: ["ALTER TABLE file_errors ADD COLUMN line INTEGER",
        "DELETE FROM blobs WHERE error IS NOT NULL"],     # errors are JSON {reason, line} from 2 on
    3: [AUDIT_TABLE_SQL, AUDIT_INDEX_SQL],
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    config TEXT NOT NULL,
    parent_id INTEGER,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    heartbeat_at REAL,
    owner_pid INTEGER,
    owner_host TEXT,
    planned INTEGER NOT NULL DEFAULT 0,
    active_s REAL NOT NULL DEFAULT 0,
    message TEXT,
    stats TEXT NOT NULL DEFAULT '{}',
    live TEXT
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    lane TEXT NOT NULL DEFAULT 'default',
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL,
    batch_id INTEGER,
    error_class TEXT,
    last_error TEXT,
    result TEXT,
    duration_ms REAL,
    updated_at REAL,
    UNIQUE (run_id, key)
);
-- only pending items are indexed for the feeder: a state change to in_flight drops the
-- entry and done/failed rows never touch this index again
CREATE INDEX IF NOT EXISTS items_feed ON items (run_id, priority, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS items_batch ON items (run_id, batch_id, id);
CREATE TABLE IF NOT EXISTS batches (
    run_id INTEGER NOT NULL,
    id INTEGER NOT NULL,
    size INTEGER NOT NULL,
    lane TEXT,
    state TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    retried INTEGER NOT NULL DEFAULT 0,
    p95_ms REAL,
    started_at REAL NOT NULL,
    ended_at REAL,
    PRIMARY KEY (run_id, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    item_id INTEGER NOT NULL,
    batch_id INTEGER,
    started_at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    outcome TEXT NOT NULL,
    error_class TEXT,
    http_status INTEGER
);
CREATE INDEX IF NOT EXISTS attempts_run ON attempts (run_id, outcome);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    created_at REAL NOT NULL,
    reason TEXT NOT NULL,
    counts TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS checkpoints_run ON checkpoints (run_id, id);
CREATE TABLE IF NOT EXISTS artifacts (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    batch_id INTEGER,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS artifacts_run ON artifacts (run_id, kind, id);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    at REAL NOT NULL,
    sample TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics (run_id, id);
CREATE TABLE IF NOT EXISTS control (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    command TEXT NOT NULL,
    arg TEXT,
    created_at REAL NOT NULL,
    consumed_at REAL
);
CREATE INDEX IF NOT EXISTS control_pending ON control (run_id, consumed_at);
CREATE TABLE IF NOT EXISTS http_cache (
    key TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    headers TEXT NOT NULL,
    stored_at REAL NOT NULL
);
""" + f"{AUDIT_TABLE_SQL};\n{AUDIT_INDEX_SQL};\n"

_RUN_COLUMNS = (
    "id, kind, state, created_at, started_at, finished_at, parent_id, spec, config, message, "
    "owner_pid, heartbeat_at"
)

_new_tuple = tuple.__new__

#: a run whose heartbeat is older than this (seconds) has lost its process
HEARTBEAT_STALE_S = 6.0


def _run_from_row(row: Sequence[Any]) -> RunInfo:
    return RunInfo(
        id=row[0], kind=row[1], state=RunState(row[2]), created_at=row[3], started_at=row[4],
        finished_at=row[5], parent_id=row[6], spec=json.loads(row[7]), config=json.loads(row[8]),
        message=row[9], owner_pid=row[10], heartbeat_at=row[11],
    )


def _batch_from_row(row: Sequence[Any]) -> BatchView:
    return BatchView(
        run_id=row[0], id=row[1], size=row[2], state=BatchState(row[3]), done=row[4], failed=row[5],
        retried=row[6], p95_ms=row[7], started_at=row[8], ended_at=row[9],
    )


def default_db_path() -> Path:
    """``BATCHDECK_DB`` or ``batchdeck.db`` in the platform's user data dir."""
    env = os.environ.get("BATCHDECK_DB")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("batchdeck", appauthor=False)) / "batchdeck.db"


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


FILE_MODE = 0o600


def _is_read_only(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == sqlite3.SQLITE_READONLY:
        return True
    return "readonly" in str(exc) or "read-only" in str(exc)


BUSY_RETRIES = 6


def _is_busy(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)) or (
        "database is locked" in str(exc))


def _is_full(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF == sqlite3.SQLITE_FULL) or "disk is full" in str(exc) or (
        isinstance(exc, OSError) and exc.errno == errno.ENOSPC)


def storage_error(path: Path, exc: BaseException) -> InputError:
    """One line for a write the database refused (disk full, read-only, I/O error)."""
    if _is_full(exc):
        return InputError(f"{path}: cannot write, the disk is full (free space, then resume)")
    if _is_read_only(exc):
        return InputError(f"{path}: cannot write, the database or its directory is read-only")
    return InputError(f"{path}: cannot write: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")


def _create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite opens it (whatever the umask)."""
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        return
    except OSError as exc:
        reason = "read-only" if exc.errno == errno.EROFS else (exc.strerror or str(exc))
        raise InputError(f"{path}: cannot create database ({reason})") from None
    os.close(fd)


def _narrow_mode(path: Path) -> None:
    """An existing database of ours that group or others may read becomes 0600 (with its
    -wal/-shm): it holds cached API responses and findings."""
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):
            info = file.stat()
            if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
                file.chmod(FILE_MODE)


def _cannot_open(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_CANTOPEN


async def _connect(path: Path, *, readonly: bool = False) -> aiosqlite.Connection:
    if readonly:
        # immutable: on read-only media a WAL database cannot even create its -shm file
        immutable = not os.access(path.parent, os.W_OK)
        uri = f"{path.resolve().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
        return await aiosqlite.connect(uri, timeout=30, uri=True)
    return await aiosqlite.connect(path, timeout=30)


class Store:
    """An open batchdeck database. Use :meth:`open`."""

    def __init__(self, db: aiosqlite.Connection, path: Path, *, readonly: bool = False) -> None:
        self.db = db
        self.path = path
        self.readonly = readonly
        self._reader: aiosqlite.Connection | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    async def open(cls, path: str | Path, *, create: bool = True) -> Store:
        path = Path(path)
        if not create and not path.exists():
            raise InputError(f"{path}: no such database")
        if path.is_dir():
            raise InputError(f"{path}: is a directory, not a database")
        _create_private(path)
        _narrow_mode(path)
        try:
            return await cls._open(path, readonly=False)
        except InputError as exc:
            if not getattr(exc, "read_only", False):
                raise
        # a valid database we may not write: open it for reading (runs, show, report work)
        return await cls._open(path, readonly=True)

    @classmethod
    async def _open(cls, path: Path, *, readonly: bool) -> Store:
        try:
            db = await _connect(path, readonly=readonly)
        except (sqlite3.Error, OSError) as exc:
            raise InputError(f"{path}: cannot open database: {exc}") from None
        store = cls(db, path, readonly=readonly)
        try:
            await store._init()
        except BaseException as exc:
            # close first: a connection left open keeps its thread, and the process, alive
            with contextlib.suppress(Exception):
                await db.close()
            if isinstance(exc, InputError):
                raise
            if isinstance(exc, sqlite3.Error) and (_is_read_only(exc) or _cannot_open(exc)) and not readonly:
                error = InputError(f"{path}: the database is read-only")
                error.read_only = True  # type: ignore[attr-defined]
                raise error from None
            if isinstance(exc, sqlite3.Error) and _is_read_only(exc):
                raise InputError(f"{path}: the database is read-only and cannot be opened for reading "
                                 f"({exc})") from None
            if isinstance(exc, sqlite3.DatabaseError):
                raise InputError(f"{path}: not a batchdeck database or corrupt ({exc})") from None
            raise
        return store

    async def _init(self) -> None:
        if self.readonly:
            await self.db.execute("PRAGMA query_only=ON")
            self._check_version(await self._schema_version())
            await self._migrate_kinds(check_only=True)
            return
        # a write on every open: a database we may not write is found here, not mid-run
        await self.db.execute("PRAGMA user_version=0")
        await self.db.execute("PRAGMA journal_mode=WAL")
        await self.db.execute("PRAGMA synchronous=NORMAL")
        await self.db.execute("PRAGMA busy_timeout=30000")
        await self.db.execute("PRAGMA temp_store=MEMORY")
        await self.db.execute("PRAGMA cache_size=-4000")
        version = await self._schema_version()
        self._check_version(version)
        await self.db.executescript(SCHEMA)
        if version is None:
            await self.db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif version < SCHEMA_VERSION:
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS.get(step, []):
                    try:
                        await self.db.execute(statement)
                    except sqlite3.OperationalError as exc:
                        # the schema script already added it; or a kind's table its migrations make
                        if "duplicate column" not in str(exc) and "no such table" not in str(exc):
                            raise
            await self.db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        await self.db.commit()
        await self._migrate_kinds()

    async def _migrate_kinds(self, *, check_only: bool = False) -> None:
        """Create or upgrade each installed job kind's tables from its ``migrations``; its version
        is kept in ``meta`` under ``kind.<name>.schema``. A database an existing kind's tables
        predate (made before kinds had migrations) gets them with IF NOT EXISTS and its version."""
        from engine.kinds import load_kinds

        for kind in load_kinds():
            if not kind.migrations:
                continue
            key = f"kind.{kind.name}.schema"
            latest = max(m.version for m in kind.migrations)
            current = await self._meta_version(key) or 0
            if current > latest:
                raise InputError(f"{self.path}: written by a newer batchdeck ({kind.name} schema {current} > {latest})")
            if check_only or current == latest:
                continue
            for migration in sorted(kind.migrations, key=lambda m: m.version):
                if migration.version > current:
                    await self.db.executescript(migration.sql)
            await self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(latest)))
            await self.db.commit()

    async def _schema_version(self) -> int | None:
        """The version recorded in ``meta``, None for a new file; an InputError if garbled."""
        return await self._meta_version("schema_version")

    async def _meta_version(self, key: str) -> int | None:
        has_meta = await self.fetchone("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'")
        if not has_meta:
            return None
        row = await self.fetchone("SELECT value FROM meta WHERE key=?", (key,))
        if row is None:
            return None
        try:
            return int(row[0])
        except (TypeError, ValueError):
            shown = str(row[0])[:40].encode("unicode_escape").decode()
            raise InputError(f"{self.path}: meta.{key} is {shown!r}, not a number; "
                             "not a batchdeck database or damaged") from None

    def _check_version(self, version: int | None) -> None:
        if version is not None and version > SCHEMA_VERSION:
            raise InputError(f"{self.path}: written by a newer batchdeck (schema {version} > {SCHEMA_VERSION})")

    async def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader.close()
        await self.db.close()

    async def reader(self) -> aiosqlite.Connection:
        """A second connection for the feeder's reads.

        Under WAL a reader never waits for the writer; through the writer's own
        aiosqlite connection, every page of pending items would queue behind the
        recorder's flush (measured: the main loop then idles a quarter of a
        zero-latency run). It sees committed rows only, which is what the feeder wants.
        """
        if self._reader is None:
            self._reader = await aiosqlite.connect(self.path, timeout=30)
            await self._reader.execute("PRAGMA query_only=ON")
        return self._reader

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- small helpers -----------------------------------------------------------------------
    # aiosqlite types rows as sqlite3.Row; with no row_factory set (never, here) they are tuples
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        async with self.db.execute(sql, params) as cur:
            return cast(list[tuple], await cur.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        async with self.db.execute(sql, params) as cur:
            return cast(tuple | None, await cur.fetchone())

    async def write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement in its own transaction: for rare, user-driven writes only.
        A refused write (disk full, read-only) is an InputError line."""
        try:
            cur = await self.db.execute(sql, params)
            await self.db.commit()
        except sqlite3.OperationalError as exc:
            await self._rollback()
            raise storage_error(self.path, exc) from None
        return cur.lastrowid or 0

    async def write_many(self, statements: Iterable[tuple[str, Sequence[Sequence[Any]]]]) -> list[int]:
        """Several executemany in one transaction (the recorder's flush); all or nothing.
        Returns the rows each statement changed (an ``INSERT OR IGNORE`` tells what it skipped)."""
        statements = list(statements)
        for attempt in range(BUSY_RETRIES + 1):
            changed: list[int] = []
            try:
                for sql, rows in statements:
                    changed.append((await self.db.executemany(sql, rows)).rowcount if rows else 0)
                await self.db.commit()
                return changed
            except sqlite3.OperationalError as exc:
                await self._rollback()
                # "database is locked" can come at once, past busy_timeout (a WAL snapshot
                # another process moved): the commit rolled back whole, so try it again
                if _is_busy(exc) and attempt < BUSY_RETRIES:
                    await asyncio.sleep(0.05 * 2 ** attempt)
                    continue
                raise storage_error(self.path, exc) from None
        return []

    async def _rollback(self) -> None:
        with contextlib.suppress(Exception):
            await self.db.rollback()

    # -- runs ----------------------------------------------------------------------------------
    async def create_run(
        self, kind: str, spec: dict, config: dict, *, parent_id: int | None = None, planned: bool = False
    ) -> int:
        return await self.write(
            "INSERT INTO runs (kind, state, spec, config, parent_id, created_at, planned) "
            "VALUES (?, 'pending', ?, ?, ?, ?, ?)",
            (kind, json.dumps(spec), json.dumps(config), parent_id, time.time(), int(planned)),
        )

    async def get_run(self, run_id: int) -> RunInfo | None:
        row = await self.fetchone(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id=?", (run_id,))
        return _run_from_row(row) if row else None

    async def require_run(self, run_id: int) -> RunInfo:
        run = await self.get_run(run_id)
        if run is None:
            raise InputError(f"{self.path}: no run {run_id}")
        return run

    async def list_runs(self, limit: int = 50, before_id: int | None = None) -> list[RunInfo]:
        dead = set(await self.detect_interrupted())
        if before_id is None:
            rows = await self.fetchall(f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = await self.fetchall(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE id < ? ORDER BY id DESC LIMIT ?", (before_id, limit)
            )
        runs = [_run_from_row(r) for r in rows]
        for run in runs:    # found dead but not markable (disk full, read-only): say so anyway
            if run.id in dead and run.state in (RunState.RUNNING, RunState.PAUSED):
                run.state = RunState.INTERRUPTED
        return runs

    async def run_flags(self, run_id: int) -> dict[str, Any]:
        row = await self.fetchone("SELECT planned, active_s, stats, live FROM runs WHERE id=?", (run_id,))
        if row is None:
            return {}
        return {
            "planned": bool(row[0]), "active_s": row[1], "stats": json.loads(row[2] or "{}"),
            "live": json.loads(row[3]) if row[3] else None,
        }

    async def detect_interrupted(self) -> list[int]:
        """Mark runs whose owner died as ``interrupted`` (stale heartbeat or dead pid here).
        On a database that cannot be written (read-only, disk full) the marks wait for a
        later call; the dead runs are still returned."""
        now = time.time()
        rows = await self.fetchall(
            "SELECT id, heartbeat_at, owner_pid, owner_host FROM runs WHERE state IN ('running', 'paused') "
            "AND owner_pid IS NOT NULL"
        )
        host = os.uname().nodename
        dead = []
        for run_id, heartbeat, pid, owner_host in rows:
            stale = heartbeat is None or now - heartbeat > HEARTBEAT_STALE_S
            gone = owner_host == host and not pid_alive(pid)
            if stale or gone:
                dead.append(run_id)
        if not dead or self.readonly:
            return dead
        try:
            for run_id in dead:
                await self.db.execute(
                    "UPDATE runs SET state='interrupted', owner_pid=NULL, message=? WHERE id=?",
                    ("the process running it stopped without a checkpoint; resume to continue", run_id),
                )
                # in_flight never outlives the process that held it
                await self._return_in_flight(run_id)
            await self.db.commit()
        except sqlite3.OperationalError:
            await self._rollback()
        return dead

    async def recover_in_flight(self, run_id: int) -> int:
        """After a crash: items that were in flight go back to pending."""
        recovered = await self._return_in_flight(run_id)
        await self.db.commit()
        return recovered

    async def _return_in_flight(self, run_id: int) -> int:
        cur = await self.db.execute(
            "UPDATE items SET state='pending', not_before=NULL WHERE run_id=? AND state='in_flight'", (run_id,)
        )
        await self.db.execute(
            "UPDATE batches SET state='partial', ended_at=? WHERE run_id=? AND state='running'",
            (time.time(), run_id),
        )
        return cur.rowcount

    # -- items ---------------------------------------------------------------------------------
    async def counts(self, run_id: int) -> Counts:
        rows = await self.fetchall("SELECT state, count(*) FROM items WHERE run_id=? GROUP BY state", (run_id,))
        c = Counts()
        for state, n in rows:
            setattr(c, state, n)
        c.total = c.pending + c.in_flight + c.done + c.failed + c.skipped
        return c

    async def max_seq(self, run_id: int) -> int:
        row = await self.fetchone("SELECT max(seq) FROM items WHERE run_id=?", (run_id,))
        return row[0] or 0 if row else 0

    async def max_batch_id(self, run_id: int) -> int:
        row = await self.fetchone("SELECT max(id) FROM batches WHERE run_id=?", (run_id,))
        return row[0] or 0 if row else 0

    async def pending_page(
        self, run_id: int, after: tuple[int, int] | None, limit: int
    ) -> list[PendingItem]:
        """Keyset page of pending items in (priority, seq) order."""
        cols = PENDING_COLUMNS
        db = await self.reader()
        if after is None:
            sql = f"SELECT {cols} FROM items WHERE run_id=? AND state='pending' ORDER BY priority, seq LIMIT ?"
            params: tuple = (run_id, limit)
        else:
            prio, seq = after
            sql = (f"SELECT {cols} FROM items WHERE run_id=? AND state='pending' AND "
                   "(priority, seq) > (?, ?) ORDER BY priority, seq LIMIT ?")   # a row value: an index range
            params = (run_id, prio, seq, limit)
        # One call into the connection's thread that executes, fetches and resets the statement:
        # a feeder cancelled mid-read (a pause) must not leave a cursor open, or the reader keeps
        # its old WAL snapshot and the next page shows items done since as pending again.
        rows = await db.execute_fetchall(sql, params)
        # tuple.__new__: a third of what PendingItem._make costs, for every item a run feeds
        return [_new_tuple(PendingItem, row) for row in rows]

    async def batch_items(self, run_id: int, batch_id: int, after_id: int = 0, limit: int = 200) -> list[dict]:
        rows = await self.fetchall(
            "SELECT id, seq, key, state, attempts, error_class, last_error, duration_ms FROM items "
            "WHERE run_id=? AND batch_id=? AND id > ? ORDER BY id LIMIT ?",
            (run_id, batch_id, after_id, limit),
        )
        keys = ("id", "seq", "key", "state", "attempts", "error_class", "last_error", "duration_ms")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def failed_rows(self, run_id: int, batch_id: int | None = None) -> list[FailedItem]:
        """The failed items of a run (of one batch), in item order."""
        sql = f"SELECT {FAILED_COLUMNS} FROM items WHERE run_id=? AND state='failed'"
        params: list[Any] = [run_id]
        if batch_id is not None:
            sql += " AND batch_id=?"
            params.append(batch_id)
        return [FailedItem(*r) for r in await self.fetchall(sql + " ORDER BY seq", params)]

    async def failed_items(self, run_id: int, batch_id: int | None = None) -> list[dict]:
        """:meth:`failed_rows` as dicts (what filters and views read)."""
        return [row.to_dict() for row in await self.failed_rows(run_id, batch_id)]

    async def last_attempt_status(self, run_id: int) -> dict[int, int | None]:
        """The HTTP status of each item's last attempt, by item id."""
        return {row[0]: row[1] for row in await self.fetchall(LAST_STATUS_SQL, (run_id,))}

    async def add_items(self, rows: Sequence[NewItem]) -> int:
        """Insert pending items in one transaction, outside a running run (a replay's copies,
        tools); a running run adds its items through its recorder. Returns how many were new."""
        return (await self.write_many([(ITEM_INSERT_SQL, rows)]))[0]

    async def add_replay_items(self, child_id: int, items: Sequence[FailedItem]) -> int:
        """Copies of failed items (key, payload, priority, lane; fresh attempts) as the pending
        items of run ``child_id``, in their order."""
        return await self.add_items([NewItem(child_id, seq, it.key, it.payload, it.priority, it.lane)
                                     for seq, it in enumerate(items, 1)])

    # -- batches ----------------------------------------------------------------------------
    async def batch_range(self, run_id: int) -> tuple[int, int] | None:
        """The first and last batch numbers of a run (None: it has no batches)."""
        row = await self.fetchone("SELECT min(id), max(id) FROM batches WHERE run_id=?", (run_id,))
        return (row[0], row[1]) if row and row[0] is not None else None

    async def has_batch(self, run_id: int, batch_id: int) -> bool:
        return await self.fetchone("SELECT 1 FROM batches WHERE run_id=? AND id=?", (run_id, batch_id)) is not None

    async def list_batches(self, run_id: int, limit: int = 50, before_id: int | None = None) -> list[BatchView]:
        cols = "run_id, id, size, state, done, failed, retried, p95_ms, started_at, ended_at"
        if before_id is None:
            rows = await self.fetchall(
                f"SELECT {cols} FROM batches WHERE run_id=? ORDER BY id DESC LIMIT ?", (run_id, limit)
            )
        else:
            rows = await self.fetchall(
                f"SELECT {cols} FROM batches WHERE run_id=? AND id < ? ORDER BY id DESC LIMIT ?",
                (run_id, before_id, limit),
            )
        return [_batch_from_row(r) for r in rows]

    # -- checkpoints, artifacts, metrics --------------------------------------------------------
    async def list_checkpoints(self, run_id: int) -> list[dict]:
        rows = await self.fetchall(
            "SELECT id, created_at, reason, counts, data FROM checkpoints WHERE run_id=? ORDER BY id", (run_id,)
        )
        return [
            {"id": r[0], "created_at": r[1], "reason": r[2], "counts": json.loads(r[3]), "data": json.loads(r[4])}
            for r in rows
        ]

    async def last_checkpoint(self, run_id: int) -> dict | None:
        rows = await self.list_checkpoints(run_id)
        return rows[-1] if rows else None

    async def list_artifacts(self, run_id: int, kind: str | None = None) -> list[dict]:
        sql = "SELECT id, batch_id, kind, created_at, summary, data FROM artifacts WHERE run_id=?"
        params: list[Any] = [run_id]
        if kind:
            sql += " AND kind=?"
            params.append(kind)
        rows = await self.fetchall(sql + " ORDER BY id", params)
        return [
            {"id": r[0], "run_id": run_id, "batch_id": r[1], "kind": r[2], "created_at": r[3], "summary": r[4],
             "data": json.loads(r[5])}
            for r in rows
        ]

    async def add_artifact(self, run_id: int, kind: str, data: dict, *, summary: str = "",
                           batch_id: int | None = None) -> int:
        return await self.write(ARTIFACT_INSERT_SQL, (run_id, batch_id, kind, time.time(), summary, json.dumps(data)))

    async def report_figures(self, run_id: int) -> ReportFigures:
        """The aggregates the run report needs (engine.metrics), read in one place."""
        row = await self.fetchone(
            "SELECT count(*), sum(duration_ms) FROM items WHERE run_id=? AND state='done' "
            "AND duration_ms IS NOT NULL", (run_id,))
        timed, busy_ms = (row[0] or 0, row[1] or 0.0) if row else (0, 0.0)
        extra = await self.fetchone(
            "SELECT coalesce(sum(duration_ms), 0) FROM attempts WHERE run_id=? AND outcome != 'ok'", (run_id,))
        errors = await self.fetchall(
            "SELECT error_class, count(*) FROM attempts WHERE run_id=? AND outcome != 'ok' GROUP BY error_class",
            (run_id,))
        failed = await self.fetchall(
            "SELECT error_class, count(*) FROM items WHERE run_id=? AND state='failed' GROUP BY error_class",
            (run_id,))
        batches = await self.fetchone(
            "SELECT count(*), avg(size), min(size), max(size) FROM batches WHERE run_id=? AND size > 0", (run_id,))
        samples = await self.fetchall("SELECT sample FROM metrics WHERE run_id=?", (run_id,))
        checkpoints = await self.fetchone("SELECT count(*) FROM checkpoints WHERE run_id=?", (run_id,))
        replays = await self.fetchone("SELECT count(*) FROM artifacts WHERE run_id=? AND kind='replay'", (run_id,))
        return ReportFigures(
            timed_items=int(timed), busy_ms=float(busy_ms) + (extra[0] if extra else 0.0),
            errors_by_class={k or "unknown": v for k, v in errors}, failed_by_class={k or "unknown": v for k, v in failed},
            batches=batches[0] if batches else 0, batch_mean=float(batches[1] or 0.0) if batches else 0.0,
            batch_min=batches[2] if batches else None, batch_max=batches[3] if batches else None,
            concurrency_samples=[float(json.loads(r[0])["concurrency"]) for r in samples],
            checkpoints=checkpoints[0] if checkpoints else 0, replay_artifacts=replays[0] if replays else 0,
        )

    async def duration_at(self, run_id: int, offset: int) -> float | None:
        """The ``offset``-th shortest duration of the run's done items (a percentile, without
        loading every duration)."""
        row = await self.fetchone(
            "SELECT duration_ms FROM items WHERE run_id=? AND state='done' AND duration_ms IS NOT NULL "
            "ORDER BY duration_ms LIMIT 1 OFFSET ?", (run_id, offset))
        return float(row[0]) if row else None

    async def metric_series(self, run_id: int, limit: int = 300) -> list[MetricSample]:
        rows = await self.fetchall(
            "SELECT sample FROM metrics WHERE run_id=? ORDER BY id DESC LIMIT ?", (run_id, limit)
        )
        return [MetricSample(**json.loads(r[0])) for r in reversed(rows)]

    # -- control -----------------------------------------------------------------------------
    async def send_control(self, run_id: int, command: ControlCommand | str, arg: str | None = None) -> int:
        """Queue a command for the process running ``run_id`` (it polls twice a second).
        An unknown command is an InputError line, before anything is stored."""
        return await self.write(CONTROL_INSERT_SQL, (run_id, parse_command(command).value, arg, time.time()))

    async def pending_control(self, run_id: int) -> list[ControlRow]:
        """Commands not consumed yet, oldest first (the owner consumes them through its recorder)."""
        return [ControlRow(*r) for r in await self.fetchall(CONTROL_PENDING_SQL, (run_id,))]

    async def take_control(self, run_id: int) -> list[ControlRow]:
        """Commands not consumed yet, marked consumed now (for a reader without a recorder)."""
        rows = await self.pending_control(run_id)
        if rows:
            await self.db.executemany(CONTROL_CONSUMED_SQL, [(time.time(), r.id) for r in rows])
            await self.db.commit()
        return rows

    # -- the run row, outside the recorder ---------------------------------------------------------
    async def mark_started(self, run_id: int, now: float) -> None:
        """This process owns the run from now (pid, host, heartbeat)."""
        await self.write(RUN_STARTED_SQL, (now, now, os.getpid(), os.uname().nodename, run_id))

    async def mark_unowned(self, run_id: int, state: RunState, message: str | None) -> None:
        """The owner lets the run go without its recorder (the database refused its last commit)."""
        await self.write(RUN_UNOWNED_SQL, (state.value, message, run_id))
