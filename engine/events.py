"""What a run tells its observers, and what an operator may tell a run: two closed lists.

:class:`EventKind` is every kind of :class:`EngineEvent` the engine emits (the runner,
and :class:`~engine.source.DbRunSource` rebuilding events of a run another process
executes); :class:`ControlCommand` is every command a run accepts, in this process
(:meth:`~engine.runner.Runner.apply_command`) or from another one through the
``control`` table (:meth:`~engine.store.Store.send_control`). Each member says what it
means where it is defined; the README's list is :func:`markdown` (a test keeps them equal).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.errors import InputError

#: events kept for the console between two drains (old ones are dropped first)
EVENTS_LEN = 1000


class _Documented(StrEnum):
    """A string enum whose members carry a one-line description (``member.doc``)."""

    doc: str

    def __new__(cls, value: str, doc: str = "") -> _Documented:
        member = str.__new__(cls, value)
        member._value_ = value
        member.doc = doc
        return member


class EventKind(_Documented):
    """The kinds of :class:`EngineEvent`."""

    RUN_STATE = "run_state", "the run changed state (planning, running, paused, completed...); the message says why"
    BATCH_STARTED = "batch_started", "a batch of items was handed to the workers"
    BATCH_ENDED = "batch_ended", "a batch ended done, partial or failed, with its counts"
    CHECKPOINT = "checkpoint", "a checkpoint was written (interval, pause, or the run's end)"
    ARTIFACT = "artifact", "an artifact was stored: the task graph, a failed batch's replay, the report"
    BREAKER = "breaker", "a lane's circuit breaker changed state, or a lane waits for it"
    CONCURRENCY = "concurrency", "the operator set the concurrency"
    STRATEGY = "strategy", "the operator set the sizing strategy"
    CONTROL = "control", "a command from another process was taken from the control table"
    HALT = "halt", "workers still waiting at a pause or stop were interrupted; their items are pending again"
    MEMORY = "memory", "the process went above max_memory_usage_mb: batches and concurrency shrink"
    ERROR = "error", "a fatal error (a revoked token...) ended the run, resumable"
    DEFERRED = "deferred", ("items whose requests must wait for a reset or a secondary-limit pause went back "
                            "to pending until then; their workers took other items")


class ControlCommand(_Documented):
    """What an operator can tell a run (``batchdeck pause RUN``..., console keys, the API)."""

    PAUSE = "pause", "stop feeding; in-flight items get HALT_GRACE_S, then go back to pending; resumable"
    RESUME = "resume", "feed a paused run again"
    CANCEL = "cancel", "end the run now, as pause does with its in-flight items; it cannot be resumed"
    CONCURRENCY = "concurrency", "ARG concurrent requests, clamped to 1..max_concurrent_requests"
    STRATEGY = "strategy", "ARG is the batch sizing strategy to switch to"


def parse_command(command: ControlCommand | str) -> ControlCommand:
    """A control command from its text (the CLI, the control table); unknown: an InputError line."""
    try:
        return ControlCommand(command)
    except ValueError:
        known = ", ".join(c.value for c in ControlCommand)
        raise InputError(f"unknown control command {str(command)[:40]!r}; known: {known}") from None


@dataclass(slots=True)
class EngineEvent:
    """A discrete thing that happened to a run (a batch ended, a breaker opened...)."""

    at: float
    kind: EventKind
    run_id: int
    message: str
    data: dict[str, Any] = field(default_factory=dict)


class EventLog:
    """A run's recent events, bounded; the console drains them (:class:`~engine.source.LiveRunSource`)."""

    def __init__(self, run_id: int, clock: Callable[[], float], maxlen: int = EVENTS_LEN) -> None:
        self.run_id = run_id
        self.clock = clock
        self.events: deque[EngineEvent] = deque(maxlen=maxlen)

    def emit(self, kind: EventKind, message: str, **data: Any) -> None:
        self.events.append(EngineEvent(self.clock(), kind, self.run_id, message, data))


def markdown() -> str:
    """The README's list of event kinds and control commands, from the enums."""
    lines = ["Events (`engine.events.EventKind`):", ""]
    lines += [f"- `{kind.value}`: {kind.doc}" for kind in EventKind]
    lines += ["", "Control commands (`engine.events.ControlCommand`):", ""]
    lines += [f"- `{command.value}`: {command.doc}" for command in ControlCommand]
    return "\n".join(lines)


__all__ = ["ControlCommand", "EngineEvent", "EventKind", "EventLog", "markdown", "parse_command"]


if __name__ == "__main__":     # python -m engine.events: the README section's text
    print(markdown())
