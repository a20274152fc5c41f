"""Generate an example planning tree: a PRD, epics and numbered tasks with dependencies.

``python -m engine.jobs.issue_sync.sample DIR [--epics 3] [--tasks 510]`` wrote
``sample_configs/planning/`` (the demo's and the benchmark's input).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

AREAS = ["auth", "billing", "search", "reports", "import", "notifications", "audit", "admin"]
VERBS = ["Add", "Refactor", "Document", "Test", "Harden", "Measure", "Migrate", "Simplify"]
FOUNDATION = 5
THINGS = ["token refresh", "rate limit headers", "CSV export", "retry policy", "audit log", "webhooks",
          "pagination", "empty states", "error messages", "schema migration", "cache keys", "permissions"]


def write_sample_tree(root: str | Path, *, epics: int = 3, tasks: int = 510, seed: int = 12) -> Path:
    root = Path(root)
    rng = random.Random(seed)
    (root / "prds").mkdir(parents=True, exist_ok=True)
    (root / "prds" / "platform.md").write_text(
        "---\nname: platform\ntitle: Platform hardening\nstatus: in-progress\nlabels: [prd]\n"
        "milestone: Q3\n---\n\n# Platform hardening\n\nMake the platform reliable under load.\n")
    per_epic = [tasks // epics + (1 if i < tasks % epics else 0) for i in range(epics)]
    for e, count in enumerate(per_epic):
        area = AREAS[e % len(AREAS)]
        epic_dir = root / "epics" / area
        epic_dir.mkdir(parents=True, exist_ok=True)
        (epic_dir / "epic.md").write_text(
            f"---\nname: {area}\ntitle: {area.title()} epic\nstatus: open\nlabels: [epic, {area}]\nprd: platform\n"
            f"milestone: Q3\n---\n\n# {area.title()}\n\nEverything {area} needs for the platform PRD.\n")
        for n in range(1, count + 1):
            # like most plans: a few foundation tasks first, the rest depend on some of them
            deps = sorted({rng.randrange(1, FOUNDATION + 1) for _ in range(rng.randrange(0, 3))}) \
                if n > FOUNDATION else []
            status = "done" if rng.random() < 0.05 else "open"
            title = f"{rng.choice(VERBS)} {rng.choice(THINGS)} ({area} {n})"
            (epic_dir / f"{n:03d}.md").write_text(
                f"---\nname: {area}-{n:03d}\ntitle: {title}\nstatus: {status}\nlabels: [task, {area}]\n"
                f"depends_on: [{', '.join(str(d) for d in deps)}]\nparallel: {str(rng.random() < 0.5).lower()}\n"
                f"---\n\n{title}.\n\n## Acceptance\n\n- it works\n- it is tested\n")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir")
    parser.add_argument("--epics", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=510)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    write_sample_tree(args.dir, epics=args.epics, tasks=args.tasks, seed=args.seed)


if __name__ == "__main__":
    main()
