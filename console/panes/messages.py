"""Typed messages that background queries post back to the panes.

Why messages: a query (history, drill-down, findings) runs in a worker so the
event loop, and the engine sharing it, never waits on SQLite; the worker hands
its result to the widget as a message, and the widget updates itself on the UI
side. A failed query never reaches a pane: the app reports it in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from engine.models import BatchView, Counts, RunInfo


@dataclass(eq=False)
class RunsLoaded(Message):
    runs: list[RunInfo]
    append: bool = False          # a further page (keyset) rather than a fresh list
    more: bool = False            # the page was full: there may be older runs
    select_id: int | None = None  # select this run once shown
    failed: dict[int, int] = field(default_factory=dict)   # failed items of the completed runs listed


@dataclass(eq=False)
class RunDetailsLoaded(Message):
    run: RunInfo
    counts: Counts | None
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(eq=False)
class BatchHistoryLoaded(Message):
    run_id: int
    batches: list[BatchView]


@dataclass(eq=False)
class BatchItemsLoaded(Message):
    batch_id: int
    rows: list[dict[str, Any]]
    more: bool


@dataclass(eq=False)
class FindingsLoaded(Message):
    run_id: int
    rows: list[dict[str, Any]]
    more: bool
