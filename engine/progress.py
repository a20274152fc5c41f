"""Headless progress for CI and scripts: a rich progress bar fed by the run's snapshot.

rich does the drawing (and degrades to plain lines when stdout is not a
terminal); we only map a :class:`~engine.models.RunSnapshot` onto its columns:
done/total, rate, ETA, failures and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA –"
    seconds = int(seconds)
    return f"ETA {seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


async def follow(source: Any, task: asyncio.Future, *, console: Console | None = None, interval: float = 0.25) -> None:
    """Draw progress until ``task`` (the run) finishes."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        await _log_lines(source, task, console)
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>9} items/s"),
        TextColumn("{task.fields[eta]}"),
        TextColumn("[red]{task.fields[failed]} failed[/] {task.fields[retries]} retries {task.fields[state]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False, refresh_per_second=4) as progress:
        bar = progress.add_task("run", total=None, rate="–", eta="ETA –", failed=0, retries=0, state="")
        while True:
            snap = await source.snapshot()
            c = snap.counts
            progress.update(
                bar, description=f"run {snap.run.id} {snap.run.kind}", total=c.total or None,
                completed=c.done + c.failed + c.skipped, rate=f"{snap.items_per_s:,.1f}", eta=_eta(snap.eta_s),
                failed=c.failed, retries=snap.retries, state=snap.run.state.value,
            )
            if task.done():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), interval)


async def _log_lines(source: Any, task: asyncio.Future, console: Console, every: float = 5.0) -> None:
    """Not a terminal (CI, a pipe): a plain line every few seconds instead of a redrawn bar."""
    while True:
        done = task.done()
        if not done:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), every)
        snap = await source.snapshot()
        c = snap.counts
        console.print(
            f"run {snap.run.id} {snap.run.kind} {snap.run.state.value}: {c.done + c.failed + c.skipped}/{c.total} "
            f"({c.failed} failed, {snap.retries} retries) {snap.items_per_s:,.1f} items/s {_eta(snap.eta_s)}",
            highlight=False, soft_wrap=True,
        )
        if done or task.done():
            return
