"""``batchdeck sync`` with a gate: at the N-th mutation (before it is sent, or after its answer came back
and before it is recorded) write a marker file and wait forever, so the test can SIGKILL the process at
exactly that point. Not a test module; run by tests/issue_sync/test_crash.py in a subprocess."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from engine.github.client import GitHubClient

KILL_AT = int(os.environ.get("SYNC_KILL_AT", "0"))
WHEN = os.environ.get("SYNC_KILL_WHEN", "after")
MARK = Path(os.environ.get("SYNC_MARK", os.devnull))
_send = GitHubClient.request
_mutations = 0


async def _gate(where: str, method: str, path: str) -> None:
    ready = MARK.with_suffix(".tmp")
    ready.write_text(f"{where} {method} {path}\n")
    ready.replace(MARK)                 # the marker appears whole
    await asyncio.Event().wait()        # held here until the test kills the process


async def gated(self, method, path_or_url, **kw):
    global _mutations
    mutation = method.upper() not in ("GET", "HEAD", "OPTIONS")
    if mutation:
        _mutations += 1
    if mutation and _mutations == KILL_AT and WHEN == "before":
        await _gate("before", method, path_or_url)
    at_gate = mutation and _mutations == KILL_AT and WHEN == "after"
    try:
        return await _send(self, method, path_or_url, **kw)
    finally:       # an answer came back (a 422 too) and nothing has recorded it yet
        if at_gate:
            await _gate("after", method, path_or_url)


GitHubClient.request = gated

if __name__ == "__main__":
    from console.cli import main

    sys.exit(main(sys.argv[1:]))
