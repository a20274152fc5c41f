"""Where batches are parsed: a pool of local worker processes, or a Dask cluster.

Both take a whole batch (:func:`~engine.jobs.ast_index.parse.parse_request`'s
request) and answer with one message for the batch.

:class:`ProcessPool` is hand-written rather than ``ProcessPoolExecutor``
because of what a dying worker must cost: the executor marks the whole pool
broken and fails every batch in flight, so one crashing file would cost every
core's batch and it could not tell whose batch killed the process. Here each
process has its own pipe and parses one batch at a time, in the order sent, so a
death is charged to exactly the batch it was parsing: that process is replaced,
the batch retried once on a fresh process, and if it dies again
:class:`WorkerCrashed` says why (the batch waiting behind it is sent again,
uncharged). Each process holds two batches (:data:`DEPTH`) so that it starts
the next one as soon as it answers one, without a round trip through this
process, which on a machine whose cores the workers fill gets the CPU late.

Workers are fresh interpreters running ``python -m engine.jobs.ast_index.worker``
(not forked: the engine's process runs threads; not ``multiprocessing``'s spawn
either, which re-imports the caller's main module in every worker, slow for the
CLI and an error in a script without a ``__main__`` guard). They exit when the
pipe from the engine closes, so a SIGKILLed engine leaves no orphans behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import queue
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from engine.errors import BatchProcessingError, InputError
from engine.jobs.ast_index.parse import parse_request

#: where the ``engine`` package lives, so a worker finds it from any working directory
ENGINE_ROOT = str(Path(__file__).resolve().parents[3])


class WorkerCrashed(BatchProcessingError):
    """A worker process died while parsing this batch, twice (unexpected: not retried again)."""


#: batches a worker process holds at once: one parsing, the next already in its pipe, so it never
#: waits for this process (busy with replies, or not scheduled on a loaded machine) between batches
DEPTH = 2


class _Batch:
    """One batch on its way through a worker process: its reply resolves ``future``."""

    __slots__ = ("request", "future", "first_death")

    def __init__(self, request: dict[str, Any], future: asyncio.Future[dict[str, Any]]) -> None:
        self.request = request
        self.future = future
        self.first_death: str | None = None     # why the process parsing it died the first time


class _Process:
    """One worker: ``python -m engine.jobs.ast_index.worker`` with a pipe each way and a thread on
    each (a write to a process busy with a long batch may block; a read blocks until the reply).
    ``batches`` are those sent and not answered yet, in the order the worker takes them: the first
    is the one it is parsing. Each thread closes its own end of the pipe as it leaves."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_reply: Any, on_exit: Any) -> None:
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
        self.batches: collections.deque[_Batch] = collections.deque()
        self._sends: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._loop, self._on_reply, self._on_exit = loop, on_reply, on_exit
        pid = self.process.pid
        threading.Thread(target=self._write_loop, args=(Connection(from_parent, readable=False),),
                         name=f"ast-index-send-{pid}", daemon=True).start()
        threading.Thread(target=self._read_loop, args=(Connection(from_child, writable=False),),
                         name=f"ast-index-recv-{pid}", daemon=True).start()

    def send(self, batch: _Batch) -> None:
        self.batches.append(batch)
        self._sends.put(batch.request)

    def stop(self) -> None:
        """No more batches: the worker exits once it has answered those it holds."""
        self._sends.put(None)

    def _write_loop(self, outbox: Connection) -> None:
        with outbox:
            while True:
                request = self._sends.get()
                try:
                    outbox.send(request)        # None: the worker's cue to exit
                except OSError:                 # it died: its reader reports that
                    return
                if request is None:
                    return

    def _read_loop(self, inbox: Connection) -> None:
        with inbox:
            while True:
                try:
                    reply = inbox.recv()
                except (EOFError, OSError):
                    break
                try:
                    self._loop.call_soon_threadsafe(self._on_reply, self, reply)
                except RuntimeError:            # the event loop is closed: nobody waits any more
                    return
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._on_exit, self)

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
        self.stop()


class ProcessPool:
    """``workers`` processes, each holding up to :data:`DEPTH` batches."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise InputError(f"--workers must be at least 1, not {workers}")
        self.workers = workers
        self.restarts = 0
        self.retried_batches = 0
        self._procs: list[_Process] = []
        self._room: asyncio.Semaphore | None = None     # batches the processes can take now
        self._closing = False

    @property
    def description(self) -> str:
        return f"{self.workers} local worker processes"

    @property
    def slots(self) -> int:
        """Batches parsed at once."""
        return self.workers

    async def start(self) -> None:
        if self._room is None:
            self._room = asyncio.Semaphore(self.workers * DEPTH)
            self._closing = False
            self._procs = [self._new() for _ in range(self.workers)]

    def _new(self) -> _Process:
        return _Process(asyncio.get_running_loop(), self._on_reply, self._on_exit)

    def _least_busy(self) -> _Process:
        return min(self._procs, key=lambda p: len(p.batches))

    async def run_batch(self, request: dict[str, Any]) -> dict[str, Any]:
        await self.start()
        assert self._room is not None
        await self._room.acquire()          # released when the batch is answered or given up
        batch = _Batch(request, asyncio.get_running_loop().create_future())
        self._least_busy().send(batch)
        # cancelled (a halt): the worker still parses it, and its reply is dropped
        return await batch.future

    def _on_reply(self, proc: _Process, reply: dict[str, Any]) -> None:
        """In the event loop: the first batch the process holds is answered."""
        if not proc.batches:                # the pool was closed meanwhile
            return
        batch = proc.batches.popleft()
        self._release()
        if not batch.future.done():
            reply["retried"] = batch.first_death is not None
            batch.future.set_result(reply)

    def _release(self) -> None:
        if self._room is not None:
            self._room.release()

    def _on_exit(self, proc: _Process) -> None:
        """In the event loop: the process's reply pipe closed (it died, or the pool is closing)."""
        if not self._closing and proc in self._procs:
            asyncio.get_running_loop().create_task(self._replace(proc))

    async def _replace(self, proc: _Process) -> None:
        """A death is charged to the batch it was parsing (the first it held): retried once on a
        fresh process, then failed; the batches queued behind it are sent again, uncharged."""
        reason = await asyncio.to_thread(proc.died)
        proc.kill()
        if self._closing or proc not in self._procs:
            return
        fresh = self._new()
        self._procs[self._procs.index(proc)] = fresh
        self.restarts += 1
        held = list(proc.batches)
        proc.batches.clear()
        for position, batch in enumerate(held):
            if batch.future.done():         # given up by its caller (cancelled)
                self._release()
                continue
            target = self._least_busy()
            if position == 0:
                if batch.first_death is not None:
                    self._release()
                    batch.future.set_exception(WorkerCrashed(
                        f"{reason} while parsing this batch, twice (first: {batch.first_death}); "
                        "its files are not indexed"))
                    continue
                batch.first_death = reason
                self.retried_batches += 1
                target = fresh              # first in line on a process of its own
            target.send(batch)

    async def close(self) -> None:
        """Idle workers exit on their own; those still parsing (batches nobody waits for
        any more) are killed, so closing never waits for a parse."""
        self._closing = True
        procs, self._procs, self._room = self._procs, [], None
        for proc in procs:
            if proc.batches:
                proc.process.kill()
            proc.stop()
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.process.wait, 2)
            proc.kill()
            for batch in proc.batches:
                batch.future.cancel()
            proc.batches.clear()

    aclose = close        # a run's Services close what they hold with aclose()

    def pids(self) -> list[int]:
        return [p.process.pid for p in self._procs if p.process.pid]


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
        try:
            return await future
        except asyncio.CancelledError:
            # a halt: a batch still queued on the scheduler must not hold up the next run or a
            # resume (one already running on a worker cannot be stopped, and is short)
            future.cancel()
            raise

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
