"""The simulator as a real HTTP server on loopback, for tests that drive ``batchdeck``
as a subprocess (the one place such tests start it)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parents[1]


@contextlib.contextmanager
def loopback_simulator(*args: str) -> Iterator[str]:
    """``python -m engine.sim.server ARGS`` in a child process; yields its base URL
    (the first line it prints) and stops it on exit."""
    proc = subprocess.Popen([sys.executable, "-m", "engine.sim.server", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http"), f"the simulator did not start: {url!r}"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
