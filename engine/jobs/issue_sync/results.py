"""What a sync run says when it stops (``sync``, ``resume``, ``replay``), its exit code, its report section.

Honest about coverage: "in step" is said only of a run that completed with no
failed item; otherwise the lines say what was not done and how to finish it.
"""

from __future__ import annotations

import sys
from typing import Any

from engine.errors import InputError
from engine.jobs.issue_sync.queries import ACTIONS, action_counts, item_rows, progress
from engine.kinds import ReportSection, ResultsRequest
from engine.models import RunState
from engine.safetext import visible

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
FAILED_SHOWN = 10


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(a, 0)} {a}" for a in (*ACTIONS, "failed"))


async def print_results(request: ResultsRequest) -> int:
    """Print what the run did; exit 0 when the tree is in step, 1 when items failed, 130 when stopped."""
    store = request.engine.store
    run_id = request.run_id
    run = await store.require_run(run_id)
    counts = await store.counts(run_id)
    actions = await action_counts(store, run_id)
    repo = visible(run.spec.get("repo", "?"))
    print(f"sync of run {run_id} into {repo}: {_summary(actions)}", file=sys.stderr)
    rows = await item_rows(store, run_id)
    if counts.failed:
        failed = [r for r in rows if r["state"] == "failed" or r["link"] == "failed"]
        for row in failed[:FAILED_SHOWN]:
            print(f"  failed: {visible(row['path'] or row['sid'])}: {visible(row['error'])}", file=sys.stderr)
        if len(failed) > FAILED_SHOWN:
            print(f"  … and {len(failed) - FAILED_SHOWN} more (the console's view of run {run_id} lists them)",
                  file=sys.stderr)
        waiting = sum(1 for r in rows if r["state"] == "waiting" or (r["link"] == "pending" and r["state"] != "failed"))
        if waiting:
            print(f"  {waiting} item(s) wait on a failed one (their issue or link was not sent): fix what failed "
                  "and sync again (what was done is not sent twice)", file=sys.stderr)
    if run.state is RunState.COMPLETED and not counts.failed:
        print(f"{repo} is in step with the planning tree ({len(run.spec.get('nodes', []))} items)", file=sys.stderr)
        return EXIT_OK
    left = counts.pending + counts.in_flight
    if left:
        print(f"not in step yet: {left} of {counts.total} writes not done; `batchdeck resume {run_id}` "
              "finishes them (nothing is sent twice)", file=sys.stderr)
    if run.state is RunState.FAILED and not counts.failed:
        raise InputError(run.message or f"run {run_id} failed")
    if run.state in (RunState.PAUSED, RunState.INTERRUPTED, RunState.RUNNING):
        return EXIT_INTERRUPTED
    return EXIT_FAILED


async def report_sections(store: Any, run_id: int) -> list[ReportSection]:
    """The run report's issue-sync part: what happened to the items, and the pace last reported."""
    run = await store.get_run(run_id)
    counts = await action_counts(store, run_id)
    pace = await progress(store, run_id)
    rows = await item_rows(store, run_id)
    links = {state: sum(1 for r in rows if r["link"] == state) for state in ("linked", "checklist", "pending",
                                                                            "failed")}
    data = {"repo": run.spec.get("repo") if run else None, "items": len(rows), "actions": counts,
            "links": links, "pace": pace}
    lines = [f"Repository: {visible(data['repo'])}, {len(rows)} items.", "", "| action | issues |", "|---|---|"]
    lines += [f"| {a} | {counts.get(a, 0)} |" for a in (*ACTIONS, "failed")]
    lines += ["", "Links: " + ", ".join(f"{n} {state}" for state, n in links.items())]
    if pace:
        lines += ["", f"Writes left: {pace['creates_left']} creates, {pace['patches_left']} updates; budget "
                      f"{pace['budget_per_minute']}/min, {pace['budget_per_hour']}/h."]
    return [ReportSection(key="issue_sync", title="issue-sync", data=data, markdown="\n".join(lines) + "\n")]
