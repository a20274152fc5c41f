"""Where batches are parsed: a pool of local worker processes, or a Dask cluster.

Both take a whole batch (:func:`~engine.jobs.ast_index.parse.parse_request`'s
request) and answer with one message for the batch.

:class:`ProcessPool` is hand-written rather than ``ProcessPoolExecutor``
because of what a dying worker must cost: the executor marks the whole pool
broken and fails every batch in flight, so one crashing file would cost every
core's batch and it could not tell whose batch killed the process. Here each
process has its own pipe and runs one batch at a time, so a death is charged to
exactly the batch it was running: that process is replaced, the batch retried
once on a fresh process, and if it dies again :class:`WorkerCrashed` says why.

Workers are fresh interpreters running ``python -m engine.jobs.ast_index.worker``
(not forked: the engine's process runs threads; not ``multiprocessing``'s spawn
either, which re-imports the caller's main module in every worker, slow for the
CLI and an error in a script without a ``__main__`` guard). They exit when the
pipe from the engine closes, so a SIGKILLed engine leaves no orphans behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from engine.errors import BatchProcessingError, InputError
from engine.jobs.ast_index.parse import parse_request

#: where the ``engine`` package lives, so a worker finds it from any working directory
ENGINE_ROOT = str(Path(__file__).resolve().parents[3])


class WorkerCrashed(BatchProcessingError):
    """A worker process died while parsing this batch, twice (unexpected: not retried again)."""


class _Process:
    """One worker: ``python -m engine.jobs.ast_index.worker`` with a pipe each way."""

    def __init__(self) -> None:
        to_child, from_parent = os.pipe()       # os.pipe fds are not inherited unless passed
        from_child, to_parent = os.pipe()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (ENGINE_ROOT, os.environ.get("PYTHONPATH")) if p)}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine.jobs.ast_index.worker", str(to_child), str(to_parent)],
                pass_fds=(to_child, to_parent), env=env, stdin=subprocess.DEVNULL)
        finally:
            os.close(to_child)
            os.close(to_parent)
        self._outbox = Connection(from_parent, readable=False)
        self._inbox = Connection(from_child, writable=False)

    def send(self, request: Any) -> None:
        self._outbox.send(request)

    def recv(self) -> Any:
        return self._inbox.recv()

    def died(self) -> str:
        try:
            code = self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "worker process stopped answering"
        if code < 0:
            return f"worker process killed by signal {-code}"
        return f"worker process exited with code {code}"

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
            self.process.wait(timeout=2)
        self.close_pipes()

    def close_pipes(self) -> None:
        for conn in (self._inbox, self._outbox):
            with contextlib.suppress(OSError):
                conn.close()


class ProcessPool:
    """``workers`` processes; at most one batch per process at a time."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise InputError(f"--workers must be at least 1, not {workers}")
        self.workers = workers
        self.restarts = 0
        self.retried_batches = 0
        self._idle: asyncio.Queue[_Process] | None = None
        self._all: set[_Process] = set()

    @property
    def description(self) -> str:
        return f"{self.workers} local worker processes"

    @property
    def slots(self) -> int:
        """Batches parsed at once."""
        return self.workers

    async def start(self) -> None:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for _ in range(self.workers):
                self._idle.put_nowait(self._new())

    def _new(self) -> _Process:
        proc = _Process()
        self._all.add(proc)
        return proc

    def _replace(self, proc: _Process, *, died: bool = True) -> None:
        proc.kill()
        self._all.discard(proc)
        self.restarts += died
        assert self._idle is not None
        self._idle.put_nowait(self._new())

    async def run_batch(self, request: dict[str, Any]) -> dict[str, Any]:
        await self.start()
        assert self._idle is not None
        first_death: str | None = None
        while True:
            proc = await self._idle.get()
            try:
                proc.send(request)
                reply = await asyncio.to_thread(proc.recv)
            except (EOFError, OSError):
                reason = await asyncio.to_thread(proc.died)
                self._replace(proc)
                if first_death is None:
                    first_death = reason
                    self.retried_batches += 1
                    continue
                raise WorkerCrashed(f"{reason} while parsing this batch, twice "
                                    f"(first: {first_death}); its files are not indexed") from None
            except BaseException:
                # cancelled mid-batch: the process still owes a reply nobody will read
                self._replace(proc, died=False)
                raise
            self._idle.put_nowait(proc)
            reply["retried"] = first_death is not None
            return reply

    async def close(self) -> None:
        for proc in list(self._all):
            with contextlib.suppress(Exception):
                proc.send(None)
        for proc in list(self._all):
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.process.wait, 2)
            proc.kill()
        self._all.clear()
        self._idle = None

    aclose = close        # a run's Services close what they hold with aclose()

    def pids(self) -> list[int]:
        return [p.process.pid for p in self._all if p.process.pid]


class DaskPool:
    """The same batches on a Dask distributed cluster (``dask://HOST:PORT`` or a Client).

    Workers read the files at the same paths (a shared checkout or network
    file system); the engine, the store and the console stay here. A Dask
    worker that dies has its task rerun elsewhere by the scheduler.
    """

    def __init__(self, address: str | Any) -> None:
        self.address = address
        self.restarts = 0
        self.retried_batches = 0
        self._client: Any = None
        self._own_client = isinstance(address, str)

    @property
    def description(self) -> str:
        return f"Dask cluster at {self.address if isinstance(self.address, str) else 'a given client'}"

    async def start(self) -> None:
        if self._client is not None:
            return
        try:
            import distributed
        except ImportError:
            raise InputError("--executor dask:// needs the cluster extra: pip install 'batchdeck[cluster]'") \
                from None
        if not self._own_client:
            self._client = self.address
            return
        target = self.address.removeprefix("dask://")
        try:
            self._client = await distributed.Client(f"tcp://{target}", asynchronous=True, timeout=10)
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--executor {self.address}: cannot reach the Dask scheduler ({exc})") from None

    @property
    def slots(self) -> int:
        """Batches parsed at once: the cluster's worker threads (as the scheduler last told us)."""
        if self._client is None:
            return 0
        workers = self._client.scheduler_info().get("workers") or {}
        return sum(int(w.get("nthreads") or 1) for w in workers.values())

    async def run_batch(self, request: dict[str, Any]) -> dict[str, Any]:
        await self.start()
        future = self._client.submit(parse_request, request, pure=False)
        return await future

    async def close(self) -> None:
        if self._client is not None and self._own_client:
            await self._client.close()
        self._client = None

    aclose = close


async def probe_scheduler(executor: str, timeout: float = 5.0) -> None:
    """An unreachable ``dask://HOST:PORT`` is a one-line error before a run is created."""
    host, _, port = executor.removeprefix("dask://").rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"executor {executor}: cannot reach the Dask scheduler ({exc or type(exc).__name__})") \
            from None
    writer.close()


def make_pool(executor: Any, workers: int | None) -> ProcessPool | DaskPool:
    """``--executor``: ``local`` (default) or ``dask://HOST:PORT``; from Python, also a
    ``distributed.Client`` (a test's or a notebook's LocalCluster)."""
    if executor is not None and not isinstance(executor, str):
        return DaskPool(executor)
    if executor and executor.startswith("dask://"):
        return DaskPool(executor)
    if executor not in (None, "", "local"):
        raise InputError(f"--executor {executor!r}: use local or dask://HOST:PORT")
    return ProcessPool(workers or os.cpu_count() or 1)
