"""The audit log: who paused, resumed, cancelled, re-sized or replayed a run, when, and from where.

One row per operator action in the ``audit`` table (schema 3), written where
the action *originates*, because only there are both facts known: the origin
(``cli``, ``console``, ``signal``) and the operator (the OS user,
:func:`getpass.getuser`). A command sent to a run in another process travels
through the ``control`` table, which carries neither; recording it again where
the runner applies it would log every action twice.

Writers: the CLI commands (``pause``, ``resume``, ``cancel``, ``concurrency``,
``replay``), the CLI's SIGINT/SIGTERM handler (origin ``signal``), and the
console through :class:`AuditedSource`, which wraps any run source. Rows are rare
and user-driven, so each is its own small transaction (:meth:`Store.write`).
"""

from __future__ import annotations

import getpass
import os
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from engine.store import Store


class Origin(StrEnum):
    CLI = "cli"
    CONSOLE = "console"
    SIGNAL = "signal"
    API = "api"          # a program driving engine.api directly


class Action(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    STOP = "stop"                # a signal: the run is left paused and resumable
    CONCURRENCY = "concurrency"
    STRATEGY = "strategy"
    REPLAY = "replay"


AUDIT_INSERT_SQL = "INSERT INTO audit (run_id, at, action, arg, origin, user, host, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_COLUMNS = "id, run_id, at, action, arg, origin, user, host, pid"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    run_id: int
    at: float
    action: str
    arg: str | None
    origin: str
    user: str
    host: str
    pid: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def operator() -> str:
    """The OS user acting (``getpass.getuser``), or the uid where no name is known (containers)."""
    try:
        return getpass.getuser()
    except Exception:   # no USER/LOGNAME and no passwd entry
        return f"uid {os.getuid()}"


async def record(store: Store, run_id: int, action: Action | str, arg: object = None, *,
                 origin: Origin | str, user: str | None = None) -> int:
    return await store.write(AUDIT_INSERT_SQL, (
        run_id, time.time(), str(action), None if arg is None else str(arg), str(origin), user or operator(),
        os.uname().nodename, os.getpid(),
    ))


async def entries(store: Store, run_id: int | None = None, *, limit: int = 500) -> list[AuditEntry]:
    """The newest ``limit`` entries (of one run, or all), oldest first."""
    if run_id is None:
        rows = await store.fetchall(f"SELECT {_COLUMNS} FROM audit ORDER BY id DESC LIMIT ?", (limit,))
    else:
        rows = await store.fetchall(f"SELECT {_COLUMNS} FROM audit WHERE run_id=? ORDER BY id DESC LIMIT ?",
                                    (run_id, limit))
    return [AuditEntry(*row) for row in reversed(rows)]


class AuditedSource:
    """A run source (``LiveRunSource``/``DbRunSource``) whose commands are recorded before they are sent.

    The console wraps the source it steers: ``AuditedSource(source, store, Origin.CONSOLE)``.
    A command the source refuses (read-only) raises before anything is recorded.
    """

    def __init__(self, source: Any, store: Store, origin: Origin = Origin.CONSOLE) -> None:
        self.source = source
        self.store = store
        self.origin = origin

    def __getattr__(self, name: str) -> Any:     # snapshot, drain_events, run_id, readonly...
        return getattr(self.source, name)

    async def _do(self, action: Action, arg: object, call: Any) -> None:
        await call
        await record(self.store, self.source.run_id, action, arg, origin=self.origin)

    async def pause(self) -> None:
        await self._do(Action.PAUSE, None, self.source.pause())

    async def resume(self) -> None:
        await self._do(Action.RESUME, None, self.source.resume())

    async def cancel(self) -> None:
        await self._do(Action.CANCEL, None, self.source.cancel())

    async def set_concurrency(self, n: int) -> None:
        await self._do(Action.CONCURRENCY, n, self.source.set_concurrency(n))

    async def set_strategy(self, name: str) -> None:
        await self._do(Action.STRATEGY, name, self.source.set_strategy(name))


__all__ = ["AUDIT_INSERT_SQL", "Action", "AuditEntry", "AuditedSource", "Origin", "entries", "operator", "record"]
