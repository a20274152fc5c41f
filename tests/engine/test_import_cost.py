"""A run that talks to no API loads no HTTP stack: the store loads every installed kind (their
tables), so a kind that imports the GitHub client when it loads costs every run ~17 MB of RSS
(bench/engine.py peak_rss_mb_100k went from 60 to 80 MB that way)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import asyncio, sys
from engine.api import Engine
from engine.config import load_config

async def main():
    async with await Engine.open(sys.argv[1], load_config(None, env={})) as engine:
        run_id = await engine.create_run("synthetic", {"items": 50})
        await (await engine.start(run_id)).wait()

asyncio.run(main())
print(sorted({m.split(".")[0] for m in sys.modules} & {"httpx", "aiohttp"}))
print(sorted(m for m in sys.modules if m in ("engine.github.client", "engine.github.service")))
"""


def test_a_synthetic_run_imports_no_http_client(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "runs.db")], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "[]"], out.stdout
