"""The run's state and the commands that change it.

:class:`Lifecycle` holds the state (running, paused...), the gate workers and the feeder
wait on, and the end of the run (``done`` and its final state); every component may end
the run through :meth:`Lifecycle.finish`. :class:`Control` carries out the operator's
commands: pause, resume, cancel, stop, concurrency, strategy, whether they come from
this process or from another one through the ``control`` table (polled by the ticker).

Pause gives in-flight items ``HALT_GRACE_S`` to finish, then cancels the workers still
busy (blocked on a rate limiter, a retry-after, a breaker or pacing wait, or a slow
request) and returns their items, and the queued ones, to pending; then it writes a
checkpoint. Cancel does the same and ends the run; a signal (SIGINT/SIGTERM) stops:
it ends this process's part and leaves the run paused and resumable. So every wait
ends within a second of the command, and an item interrupted mid-request runs again on
resume (at least once, as after a crash).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from engine.errors import InputError
from engine.events import ControlCommand, EventKind, EventLog, parse_command
from engine.models import RunInfo, RunState

if TYPE_CHECKING:
    from engine.recorder import Recorder
    from engine.run.feeder import Feeder
    from engine.run.ledger import Ledger
    from engine.run.workers import WorkerPool
    from engine.sizing import BatchSizer
    from engine.store import Store

log = logging.getLogger("batchdeck.runner")

#: how long pause/cancel/stop let in-flight items finish before cancelling them (see module doc)
HALT_GRACE_S = 0.5


class Lifecycle:
    """State, gate and end of one run (and the active time it accumulates while running)."""

    def __init__(self, run: RunInfo, recorder: Recorder, events: EventLog) -> None:
        self.run = run
        self.recorder = recorder
        self.events = events
        self.state = RunState.PENDING
        self.planning = False
        self.gate = asyncio.Event()             # set while items may be fed and run
        self._gate_changed = asyncio.Event()    # replaced at every pulse: parked workers wake
        self.done = asyncio.Event()
        self.final: tuple[RunState, str | None] = (RunState.COMPLETED, None)
        self._active_since: float | None = None
        self.active_s = 0.0

    @property
    def gate_changed(self) -> asyncio.Event:
        return self._gate_changed

    def pulse(self) -> None:
        """Wake the parked workers: the gate or the concurrency changed."""
        self._gate_changed.set()
        self._gate_changed = asyncio.Event()

    def set_state(self, state: RunState, message: str | None = None) -> None:
        if state is RunState.RUNNING and self._active_since is None:
            self._active_since = time.monotonic()
        elif state is not RunState.RUNNING:
            self.accumulate_active()
        self.state = state
        self.run.state = state
        self.run.message = message
        self.recorder.set_run_state(self.run.id, state.value, message)
        self.events.emit(EventKind.RUN_STATE, f"{state.value}" + (f": {message}" if message else ""))

    def accumulate_active(self) -> None:
        if self._active_since is not None:
            self.active_s += time.monotonic() - self._active_since
            self._active_since = None

    def active_seconds(self) -> float:
        return self.active_s + (time.monotonic() - self._active_since if self._active_since else 0.0)

    def finish(self, state: RunState, message: str | None) -> None:
        """End the run (the first call wins); the runner then halts and closes it."""
        if not self.done.is_set():
            self.final = (state, message)
            self.done.set()
            self.gate.clear()
            self.pulse()

    def check_complete(self, pending: int, in_flight: int) -> None:
        if pending == 0 and in_flight == 0 and self.state is RunState.RUNNING:
            self.finish(RunState.COMPLETED, None)


class Control:
    """The operator's commands, halting, and the control table of this run."""

    def __init__(self, *, store: Store, run_id: int, recorder: Recorder, events: EventLog, lifecycle: Lifecycle,
                 ledger: Ledger, feeder: Feeder, workers: WorkerPool, sizer: BatchSizer) -> None:
        self.store = store
        self.run_id = run_id
        self.recorder = recorder
        self.events = events
        self.lifecycle = lifecycle
        self.ledger = ledger
        self.feeder = feeder
        self.workers = workers
        self.sizer = sizer
        self._lock = asyncio.Lock()
        self._handled: set[int] = set()
        self._background: set[asyncio.Task] = set()

    async def pause(self, reason: str = "paused by operator") -> None:
        async with self._lock:
            if self.lifecycle.state is not RunState.RUNNING:
                return
            self.lifecycle.set_state(RunState.PAUSED, reason)
            await self.halt()
            self.ledger.checkpoint("pause")
            with contextlib.suppress(InputError):    # a refused write: the ticker stops the run
                await self.recorder.flush()

    async def resume(self) -> None:
        async with self._lock:
            if self.lifecycle.state is not RunState.PAUSED or self.lifecycle.done.is_set():
                return
            self.lifecycle.set_state(RunState.RUNNING, "resumed")
            self.open_gate()
            self.ledger.check_complete()

    def cancel(self, reason: str = "cancelled by operator") -> None:
        self.lifecycle.finish(RunState.CANCELLED, reason)

    def stop(self, reason: str = "stopped") -> None:
        """End this process's part of the run, leaving it resumable (SIGINT/SIGTERM).

        In-flight items get ``HALT_GRACE_S`` and are then interrupted back to pending
        (:meth:`halt`): one may be waiting out a secondary-limit pause of a minute or
        more, and a stop must take effect within a second."""
        self.lifecycle.finish(RunState.PAUSED, reason)

    def set_concurrency(self, n: int) -> int:
        value = self.sizer.set_concurrency(n)
        self.lifecycle.pulse()
        self.events.emit(EventKind.CONCURRENCY, f"concurrency set to {self.sizer.concurrency}")
        return value if value is not None else self.sizer.concurrency

    def set_strategy(self, name: str) -> None:
        self.sizer.set_strategy(name)
        self.lifecycle.pulse()
        self.events.emit(EventKind.STRATEGY, f"strategy set to {name}")

    async def apply(self, command: ControlCommand | str, arg: str | None) -> None:
        command = parse_command(command)
        if command is ControlCommand.PAUSE:
            # not awaited: pausing waits for in-flight items, and the ticker must keep beating
            task = asyncio.create_task(self.pause("paused from another process"))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif command is ControlCommand.RESUME:
            await self.resume()
        elif command is ControlCommand.CANCEL:
            self.cancel("cancelled from another process")
        elif command is ControlCommand.CONCURRENCY and arg:
            self.set_concurrency(int(arg))
        elif command is ControlCommand.STRATEGY and arg:
            self.set_strategy(arg)

    async def poll(self) -> None:
        """Carry out the commands another process queued for this run (the ticker calls this)."""
        try:
            rows = await self.store.pending_control(self.run_id)
        except Exception:  # a read failing must not stop the run; the next tick retries
            log.exception("control poll failed")
            return
        for row in rows:
            if row.id in self._handled:
                continue
            self._handled.add(row.id)
            self.recorder.consume_control(row.id, self.events.clock())
            self.events.emit(EventKind.CONTROL, f"control command {row.command}" + (f" {row.arg}" if row.arg else ""))
            try:
                await self.apply(row.command, row.arg)
            except (InputError, ValueError) as exc:   # a command this batchdeck lacks, a bad argument
                log.warning("run %s: control command %r ignored: %s", self.run_id, row.command, exc)

    def open_gate(self) -> None:
        self.lifecycle.gate.set()
        self.feeder.start()
        self.lifecycle.pulse()

    async def halt(self) -> None:
        """Stop feeding, return queued items to pending, give in-flight ones ``HALT_GRACE_S``
        to finish, then cancel the workers still holding items (their items go back to
        pending) and put fresh workers in their place for a later resume."""
        self.lifecycle.gate.clear()
        self.lifecycle.pulse()
        await self.feeder.stop()
        self.feeder.drain_queue()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.workers.idle.wait(), HALT_GRACE_S)
        stopped = await self.workers.interrupt_busy()
        if stopped:
            self.events.emit(EventKind.HALT, f"{stopped} workers still waiting were stopped; their items are "
                                             "pending again")
