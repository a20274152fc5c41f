"""Progress by phase, and whether a run's total is known yet.

A run's items are of kinds (the part of the key before the first ``:``:
``repo:acme/api`` is a ``repo`` item, ``file:acme/api:package.json`` a
``file``). Some kinds spawn children while they run (an ioc-scan ``repo`` item
reads the tree and adds a ``file`` item per lockfile), so ``done/total`` while
repositories are still being read compares against a total that will grow:
``189/300 (63%) ETA 2s`` for a run that ends at 1,986 items. This module counts
items per kind in memory (a dict increment per item, no query) and says when
the total is *final*: planning is over and no item of a spawning kind is still
pending or in flight. Until then the console and the progress bar show the
total as a lower bound and no percentage or ETA.

A job kind names its spawning kinds with ``spawning_kinds`` (a frozenset of key
prefixes; :class:`engine.processor.DeclaresSpawns`). A job that spawns without saying so is treated as spawning from
every kind: its total is final only when nothing is left to run.
"""

from __future__ import annotations

from typing import Any

from engine.models import PhaseView

# The phase of a key without a ``kind:`` prefix.
PLAIN_PHASE = "items"

PHASE_SQL = (
    "SELECT CASE WHEN instr(key, ':') > 1 THEN substr(key, 1, instr(key, ':') - 1) ELSE ? END AS phase, "
    "state, count(*), min(seq) FROM items WHERE run_id=? GROUP BY phase, state ORDER BY 4"
)   # ordered by first appearance: planned phases before the ones they spawn


def phase_of(key: str) -> str:
    kind, sep, _ = key.partition(":")
    return kind if sep and kind else PLAIN_PHASE


class PhaseCounter:
    """Items per phase: how many exist and how many are still open (pending or in flight)."""

    def __init__(self, spawning_kinds: frozenset[str] | None = None) -> None:
        self.declared = frozenset(spawning_kinds) if spawning_kinds is not None else None
        self.total: dict[str, int] = {}
        self.open: dict[str, int] = {}
        self.spawned = False            # a spawn was seen although the job declared nothing

    async def load(self, store: Any, run_id: int) -> None:
        """Start from what the database holds (a resume, a replay child, after planning)."""
        rows = await store.fetchall(PHASE_SQL, (PLAIN_PHASE, run_id))
        self.total, self.open = {}, {}
        for phase, state, n, _first in rows:
            self.total[phase] = self.total.get(phase, 0) + n
            if state in ("pending", "in_flight"):
                self.open[phase] = self.open.get(phase, 0) + n

    def add(self, key: str, *, spawned: bool = False) -> None:
        phase = phase_of(key)
        self.total[phase] = self.total.get(phase, 0) + 1
        self.open[phase] = self.open.get(phase, 0) + 1
        if spawned and self.declared is None:
            self.spawned = True

    def finish(self, key: str) -> None:
        """An item ended for good (done or failed); a retry is still open."""
        phase = phase_of(key)
        if self.open.get(phase, 0) > 0:
            self.open[phase] -= 1

    def total_final(self, planning: bool) -> bool:
        if planning:
            return False
        if self.declared is None:
            return not self.spawned or not any(self.open.values())
        return not any(self.open.get(kind, 0) for kind in self.declared)

    def views(self) -> list[PhaseView]:
        spawning = self.declared if self.declared is not None else (
            frozenset(self.total) if self.spawned else frozenset())
        return [PhaseView(name=phase, total=total, finished=total - self.open.get(phase, 0),
                          spawning=phase in spawning)
                for phase, total in self.total.items()]
