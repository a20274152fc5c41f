"""Deferral: a wait too long to hold a worker for gives the worker back instead.

A run has a fixed pool of workers. When a request must wait for something that ends
far away — a bucket whose budget is spent until its reset, a token paused by a
secondary limit — a worker sleeping in that wait is a worker lost to every other item,
and the items it could run (another org's, on another App installation with its own
buckets) sit in the queue. So, *inside a worker* (:func:`deferring`), such a wait is not
slept: the GitHub client's limiter raises :class:`DeferredUntil`, the worker puts the
item back to pending with ``not_before`` at the wait's end — no attempt, no failure
counted — and takes the next item; the feeder hands the item out again when it is due
(the retry-wait path: :class:`~engine.run.feeder.RetryWaits`). Outside a worker
(planning, the CLI, scripts) the client waits as it always did.

Why a signal raised from the wait, rather than per-owner queues or a feeder that
alternates owners: the engine knows nothing of owners or installations (an item is a
key, a payload and a lane), and only the client knows which bucket a request draws from
and when it refills. Raising from the one place that knows keeps the pool fixed, the
queue bounded and the feeder the only one who decides what runs next.

Only waits that end at a known, far time defer (a reset, a pause, longer than
:data:`DEFER_AFTER_S`). Pacing waits (spread pacing, points per minute) stay in place:
they are short and recur for every request, and deferring them would send every
pending item round the queue again for each one admitted.

:class:`DeferredUntil` derives from ``BaseException``, as ``asyncio.CancelledError``
does and for the same reason: a kind's ``except Exception`` (log and carry on, count a
failure) must not swallow it and report an item done that never ran.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

#: a wait longer than this (seconds) gives its worker back rather than holding it
DEFER_AFTER_S = 1.0

_deferrable: contextvars.ContextVar[bool] = contextvars.ContextVar("batchdeck_deferrable", default=False)


class DeferredUntil(BaseException):  # noqa: N818 - a signal, not an error (see the module docstring)
    """The request cannot go before ``at`` (the waiter's clock), ``delay_s`` from when this was
    raised, because of ``what`` (``"core budget"``, ``"read lane: secondary rate limit"``)."""

    def __init__(self, what: str, at: float, delay_s: float) -> None:
        super().__init__(f"{what}: deferred {delay_s:.1f}s")
        self.what = what
        self.at = at
        self.delay_s = delay_s


@contextlib.contextmanager
def deferring() -> Iterator[None]:
    """Long waits inside this block (and in the tasks it starts) raise :class:`DeferredUntil`."""
    token = _deferrable.set(True)
    try:
        yield
    finally:
        _deferrable.reset(token)


def defer_if_long(what: str, now: float, wait_s: float) -> None:
    """Raise :class:`DeferredUntil` for a wait of ``wait_s`` from ``now`` when it is long and the
    caller runs inside :func:`deferring`; else return (the caller sleeps)."""
    if wait_s > DEFER_AFTER_S and _deferrable.get():
        raise DeferredUntil(what, now + wait_s, wait_s)
