"""The contract between the engine and a job kind.

A job kind's processor (``JobKind.processor`` of :mod:`engine.kinds`, registered under the
``batchdeck.kinds`` entry-point group) plans and processes its items:

* ``plan(spec, ctx)`` yields :class:`~engine.models.PlannedItem` (sync or async
  iterable). Items are streamed into SQLite in chunks; planning runs once per
  run (again after a crash during planning, idempotently by item key).
* ``process(item, ctx)`` does one item and returns a JSON-serialisable result
  (or ``None``). Raise an :mod:`engine.errors` exception to say how it failed;
  anything else counts as ``unexpected`` and is not retried.
* optional ``process_batch(items, ctx)`` with a ``batch_lanes`` set: items of
  those lanes come as whole batches (one GraphQL query for many files, say),
  one result or exception per item, in order; other lanes item by item.
* ``ctx.spawn(PlannedItem)`` adds follow-up items to the run while it runs
  (a repository item discovering its lockfiles, say).
* :class:`~engine.deferral.DeferredUntil` (the GitHub client's, when a request would
  wait for a reset or a pause) is not an error: let it pass (it derives from
  ``BaseException``), or return it as one item's result from ``process_batch``; the
  engine puts that item back until then without counting an attempt.
* optional ``spawning_kinds`` (:class:`DeclaresSpawns`): the key prefixes whose items
  spawn; the run's total is final once none of them is open. Not declared (the default),
  a kind that spawns is taken to spawn from every kind (:func:`spawning_kinds`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from engine.models import Item, PlannedItem

if TYPE_CHECKING:
    from engine.breaker import BreakerRegistry
    from engine.config import AppConfig
    from engine.store import Store

@dataclass
class RunContext:
    """What a job kind may use while planning and processing.

    ``github`` is the rate-aware client when the run has one (None otherwise);
    ``services`` holds anything else the caller wired in. ``counters`` are
    summed into the run's report (``api_requests``, ``api_requests_saved``,
    ``rate_limited``...): a job kind or the client adds to them.
    """

    run_id: int
    config: AppConfig
    store: Store
    breakers: BreakerRegistry
    spec: dict[str, Any] = field(default_factory=dict)
    github: Any = None
    services: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("batchdeck.job"))
    _spawn: Any = None
    _write: Any = None

    def write(self, sql: str, rows: list[tuple]) -> None:
        """Persist job rows (findings, caches) through the run's one writer, in its next commit."""
        if self._write is None:
            raise RuntimeError("write is only available while the run is active")
        self._write(sql, rows)

    def spawn(self, item: PlannedItem) -> None:
        """Add a follow-up item to the running run (persisted by the recorder)."""
        if self._spawn is None:
            raise RuntimeError("spawn is only available while the run is processing")
        self._spawn(item)

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n


@runtime_checkable
class ItemProcessor(Protocol):
    """A kind that processes item by item (the runner calls ``process`` once per item)."""

    kind: ClassVar[str]

    def plan(self, spec: dict[str, Any], ctx: RunContext) -> Iterable[PlannedItem] | AsyncIterable[PlannedItem]: ...

    async def process(self, item: Item, ctx: RunContext) -> Any: ...


@runtime_checkable
class BatchProcessor(ItemProcessor, Protocol):
    """A kind that takes whole batches on ``batch_lanes`` (empty: every lane): one result or
    exception per item, in order. Items of other lanes still go through ``process``."""

    batch_lanes: frozenset[str]

    async def process_batch(self, items: list[Item], ctx: RunContext) -> list[Any]: ...


@runtime_checkable
class SizesItsBatches(Protocol):
    """A kind that sizes its own batches (ast-index: by parse time); the sizer's size is its input."""

    def next_batch_size(self, engine_size: int) -> int: ...


@runtime_checkable
class DeclaresSpawns(Protocol):
    """A kind whose items of some kinds (key prefixes before ``:``) spawn others while they run:
    ioc-scan's ``repo`` items add a ``file`` item per lockfile. Progress shows the total as final
    once planning is over and no item of these kinds is pending or in flight (engine/phases.py)."""

    spawning_kinds: ClassVar[frozenset[str]]


def spawning_kinds(processor: object) -> frozenset[str] | None:
    """The kinds ``processor`` declares as spawning; None, the default, when it declares none
    (then a spawn seen at run time makes every kind count as spawning)."""
    return frozenset(processor.spawning_kinds) if isinstance(processor, DeclaresSpawns) else None


Processor = ItemProcessor
