"""Headless progress for CI and scripts, and the words both it and the console use for progress.

rich does the drawing (and degrades to plain lines when stdout is not a
terminal); we only map a :class:`~engine.models.RunSnapshot` onto its columns.

What progress may claim is decided once, here (:func:`total_text`,
:func:`phases_text`, :func:`eta_text`), for the bar, the log lines and the
console header alike: while the total is still growing (planning, or items that
spawn items still open) the total is shown as a lower bound (``1,234/5,000+``)
with no percentage and no ETA; a paused run, a stalled one and one with zero
throughput have no ETA; an ETA beyond a day says ``> 1 day`` rather than a
number nobody can use. Everything from the run (its kind, phase names) is shown
as plain text: rich markup is never applied to it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from engine import outlook
from engine.models import RunSnapshot, RunState
from engine.safetext import visible
from engine.timefmt import duration


def total_known(snap: RunSnapshot) -> bool:
    return snap.total_known


def total_text(snap: RunSnapshot) -> str:
    """``4,210/10,000 (42%)``, or ``429/1,986+ (still discovering)`` while the total grows."""
    c = snap.counts
    if total_known(snap):
        percent = f" ({100 * c.finished / c.total:.0f}%)" if c.total else ""
        return f"{c.finished:,}/{c.total:,}{percent}"
    return f"{c.finished:,}/{c.total:,}+ ({'planning' if snap.planning else 'still discovering'})"


def phases_text(snap: RunSnapshot) -> str:
    """``repo 120/300 · file 309/1,686+``: each kind of item, ``+`` where more may come."""
    if len(snap.phases) < 2 and not snap.planning:
        return ""
    bits = []
    for phase in snap.phases:
        growing = snap.planning or (not snap.total_final and not phase.spawning)
        bits.append(f"{visible(phase.name)} {phase.finished:,}/{phase.total:,}{'+' if growing else ''}")
    if snap.planning and not bits:
        bits.append("listing")
    return " · ".join(bits)


def eta_text(snap: RunSnapshot) -> str:
    """``ETA 4m05s``, or why there is none; empty for a run that is not running or paused."""
    state = snap.run.state
    if state is RunState.PAUSED:
        return "ETA — (paused)"
    if state is not RunState.RUNNING:
        return ""
    if not total_known(snap):
        return "ETA — (total still growing)"
    if snap.eta_s is None or snap.items_per_s <= 0:
        return "ETA — (no throughput)"
    return f"ETA {duration(snap.eta_s)}"


def _line(snap: RunSnapshot) -> str:
    c = snap.counts
    phases = phases_text(snap)
    return " ".join(part for part in (
        f"run {snap.run.id} {visible(snap.run.kind)} {snap.run.state.value}: {total_text(snap)}",
        f"[{phases}]" if phases else "",
        f"({c.failed} failed, {snap.retries} retries) {snap.items_per_s:,.1f} items/s",
        eta_text(snap), outlook.outlook_text(snap)) if part)


async def follow(source: Any, task: asyncio.Future, *, console: Console | None = None, interval: float = 0.25) -> None:
    """Draw progress until ``task`` (the run) finishes."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        await _log_lines(source, task, console)
        return
    columns = (
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>9} items/s", markup=False),
        TextColumn("{task.fields[eta]}", markup=False),
        TextColumn("{task.fields[failed]} failed", style="red", markup=False),
        TextColumn("{task.fields[retries]} retries {task.fields[state]}", markup=False),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False, refresh_per_second=4) as progress:
        bar = progress.add_task("run", total=None, rate="–", eta="", failed=0, retries=0, state="")
        while True:
            snap = await source.snapshot()
            c = snap.counts
            phases = phases_text(snap)
            description = f"run {snap.run.id} {visible(snap.run.kind)}" + (f" · {phases}" if phases else "")
            if not total_known(snap):
                description += " · still discovering"
            description += f" · {budget}" if (budget := outlook.outlook_text(snap)) else ""
            progress.update(
                # no total while it still grows: the bar pulses instead of claiming a share
                bar, description=description, total=(c.total or None) if total_known(snap) else None,
                completed=c.finished, rate=f"{snap.items_per_s:,.1f}", eta=eta_text(snap),
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
        console.print(Text(_line(snap)), highlight=False, soft_wrap=True)
        if done or task.done():
            return
