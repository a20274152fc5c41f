"""Progress that does not mislead: a growing total is a lower bound, and an ETA is given only when it means something.

What an operator saw before: ``189/300 (63%) ETA 2s`` for a run that ended at
1,986 items (repositories spawn file items as their trees are read), ``ETA
1h10m`` while paused, and 20-to-60-digit ETAs once throughput fell to zero.
The runner tests hold the spawning items with a gate the test opens; the
throughput test drives the runner's one-second sampler with a hand-moved clock.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import ClassVar

from console_fakes import fixed_app, make_snapshot, settle
from rich.console import Console

from console.panes.header import RunHeader
from engine import progress
from engine.api import Engine
from engine.config import load_config
from engine.models import Counts, PhaseView, PlannedItem, RunState
from engine.run.telemetry import STALL_SAMPLES
from engine.runner import Runner


def growing_snapshot(**kw):
    snap = make_snapshot()
    return replace(snap, counts=Counts(total=300, pending=100, in_flight=11, done=189), eta_s=2.0,
                   items_per_s=90.0, total_final=False,
                   phases=[PhaseView("repo", 120, 80, spawning=True), PhaseView("file", 180, 109)], **kw)


def test_a_growing_total_shows_as_a_lower_bound_with_phases_and_no_eta():
    snap = growing_snapshot()
    assert progress.total_text(snap) == "189/300+ (still discovering)"
    assert progress.phases_text(snap) == "repo 80/120 · file 109/180+"
    assert progress.eta_text(snap) == "ETA — (total still growing)"
    text = str(RunHeader.header_line(snap, mode="in-process", readonly=False))
    assert "%" not in text and "ETA 2s" not in text and "repo 80/120" in text


def test_no_eta_while_paused_or_without_throughput_and_never_an_absurd_number():
    snap = make_snapshot()
    assert progress.eta_text(snap) == "ETA 2m45s"
    paused = replace(snap, run=replace(snap.run, state=RunState.PAUSED), eta_s=4200.0)
    assert progress.eta_text(paused) == "ETA — (paused)"
    assert progress.eta_text(replace(snap, items_per_s=0.0, eta_s=None)) == "ETA — (no throughput)"
    assert progress.eta_text(replace(snap, eta_s=6.0e59)) == "ETA > 1 day"
    assert progress.duration(600132879 * 3600.0) == "> 1 day"


async def test_headless_lines_say_still_discovering_and_print_markup_literally():
    snap = growing_snapshot()
    snap = replace(snap, run=replace(snap.run, kind="[/oops]\x1b]0;x\x07"))

    class Source:
        async def snapshot(self):
            return snap
    console = Console(record=True, width=200, force_terminal=False)
    done = asyncio.get_running_loop().create_future()
    done.set_result(None)
    await progress._log_lines(Source(), done, console)
    line = console.export_text()
    assert "189/300+ (still discovering)" in line and "ETA — (total still growing)" in line
    assert "[/oops]␛]0;x␇" in line and "\x1b" not in line


class SpawningJob:
    """Each ``parent`` item waits for the test's gate, then spawns three ``child`` items."""

    kind: ClassVar[str] = "test-spawning"
    spawning_kinds: ClassVar[frozenset[str]] = frozenset({"parent"})

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()

    def plan(self, spec, ctx):
        return [PlannedItem(key=f"parent:{i}") for i in range(4)]

    async def process(self, item, ctx):
        if item.key.startswith("parent:"):
            self.started.set()
            await self.gate.wait()
            for n in range(3):
                ctx.spawn(PlannedItem(key=f"child:{item.key}:{n}", priority=-1))
        return None


async def test_the_runner_says_the_total_is_final_only_when_no_spawning_item_is_left(tmp_path):
    engine = await Engine.open(tmp_path / "p.db", load_config(None, env={}, overrides={}))
    try:
        run_id = await engine.store.create_run("test-spawning", {}, {})
        job = SpawningJob()
        runner = Runner(engine.store, await engine.store.require_run(run_id), job, engine.config)
        task = asyncio.create_task(runner.run())
        await asyncio.wait_for(job.started.wait(), 30)
        held = runner.snapshot()
        assert held.total_final is False and held.eta_s is None
        assert progress.total_text(held).endswith("+ (still discovering)")
        assert {p.name: p.spawning for p in held.phases}["parent"] is True
        job.gate.set()
        assert await asyncio.wait_for(task, 30) is RunState.COMPLETED
        final = runner.snapshot()
        assert final.total_final is True and final.counts.total == 16
        assert {p.name: (p.finished, p.total) for p in final.phases} == {"parent": (4, 4), "child": (12, 12)}
    finally:
        await engine.close()


class HeldJob:
    kind: ClassVar[str] = "test-held"

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    def plan(self, spec, ctx):
        return [PlannedItem(key=f"item:{i}") for i in range(50)]

    async def process(self, item, ctx):
        if int(item.key.split(":")[1]) >= 10:
            await self.gate.wait()


async def test_throughput_that_drops_to_zero_gives_no_eta_instead_of_a_huge_one(tmp_path):
    engine = await Engine.open(tmp_path / "z.db", load_config(None, env={}, overrides={}))
    now = [1000.0]
    try:
        run_id = await engine.store.create_run("test-held", {}, {})
        job = HeldJob()
        runner = Runner(engine.store, await engine.store.require_run(run_id), job, engine.config,
                        clock=lambda: now[0])
        task = asyncio.create_task(runner.run())
        while runner.counts.done < 10:
            await asyncio.sleep(0.01)
        runner.telemetry.last_tick = (now[0] - 1.0, 0)
        runner.telemetry.sample()                       # ten finished in the last second
        assert runner.snapshot().eta_s is not None
        etas = []
        for _ in range(STALL_SAMPLES):         # then nothing finishes, second after second
            now[0] += 1.0
            runner.telemetry.sample()
            etas.append(runner.snapshot().eta_s)
        assert etas[-1] is None and all(e is None or e < 86_400 * 30 for e in etas)
        assert progress.eta_text(runner.snapshot()) == "ETA — (no throughput)"
        job.gate.set()
        await asyncio.wait_for(task, 30)
    finally:
        await engine.close()


async def test_the_header_shows_a_completed_run_with_failures_apart_from_a_clean_one():
    snap = replace(make_snapshot(), run=replace(make_snapshot().run, state=RunState.COMPLETED))
    app = fixed_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        header = app.screen.query_one(RunHeader)
        failed = str(header.header_line(snap, mode="attached", readonly=False))
        clean = str(header.header_line(replace(snap, counts=Counts(total=10, done=10)), mode="attached",
                                   readonly=False))
        assert "◐ completed, 96 failed" in failed and "✔" not in failed
        assert "✔ completed" in clean
