"""Typed requests that screens post to the app: the one place that acts on them.

A screen decides *what* the operator asked for (which run, which batch, which rows);
the app decides *how* (through the session, in a worker) and reports any failure in
one place (``BatchdeckApp.report_error``: a plain-text notification). So no screen
touches the engine, the store or a run source, and no screen imports the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.message import Message

from console.session import ReplayRequest
from engine.models import RunInfo


@dataclass(eq=False)
class ControlRequested(Message):
    """Steer the watched run: ``pause``, ``resume``, ``cancel``, ``concurrency`` (arg n)
    or ``strategy`` (arg name)."""

    command: str
    arg: Any = None


@dataclass(eq=False)
class FollowRequested(Message):
    """Watch this run (its in-process source if this console drives it, else attach)."""

    run_id: int


@dataclass(eq=False)
class ResumeRequested(Message):
    """Start or resume this run in this process and watch it."""

    run_id: int


@dataclass(eq=False)
class ReplayRequested(Message):
    request: ReplayRequest


@dataclass(eq=False)
class ReplayDialogRequested(Message):
    """Open the replay dialog for the failed items of these batches (counted first)."""

    run_id: int
    batch_ids: list[int]
    chosen_by: str


@dataclass(eq=False)
class ExportRequested(Message):
    """Write these rows (plain dicts, as shown) to a file the operator chooses."""

    name: str
    rows: list[dict[str, Any]]


@dataclass(eq=False)
class ReportRequested(Message):
    """Write the report of a run to ``path``."""

    run_id: int
    path: Path


@dataclass(eq=False)
class ResultsViewRequested(Message):
    """Open the results view of this run's job kind (``batchdeck.views``)."""

    run: RunInfo
