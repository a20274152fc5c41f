"""The README's "Using batchdeck from Python" examples, run as written against the simulator.

The blocks are read from README.md (not copied here), each run as its own script in one
directory, pointed at a simulator on loopback through the environment a user would set
(``BATCHDECK_API_URL``, ``GITHUB_TOKEN``). What they print is checked against the
simulator's planted truth and the run database.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.loopback import loopback_simulator

ROOT = Path(__file__).parents[2]
SECTION = "## Using batchdeck from Python"


def readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end != -1 else None]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.fixture(scope="module")
def simulator():
    with loopback_simulator("--repos", "12", "--seed", "4") as url:
        yield url


def run_example(code: str, cwd: Path, url: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHDECK_", "GITHUB_", "GH_"))}
    env.update(BATCHDECK_API_URL=url, GITHUB_TOKEN="sim-token", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_readme_has_the_examples_the_issue_asks_for():
    blocks = readme_examples()
    assert len(blocks) == 4
    assert all("from engine import" in b for b in blocks)
    assert not any(re.search(r"^from engine\.|^import engine\.", b, flags=re.M) for b in blocks)  # public names only


def test_readme_examples_scan_stream_pause_replay_and_sync(simulator, tmp_path):
    scan, pause_resume, replay, sync_wrapper = readme_examples()
    truth = {(t["repo"], t["package"], t["version"], t["path"])
             for t in httpx.get(f"{simulator}/_sim/truth").json()["findings"]}

    out = run_example(scan, tmp_path, simulator)
    found = set(re.findall(r"^(\S+): (\S+)@(\S+) in (\S+):\d+$", out, flags=re.M))
    assert found and found <= truth
    assert re.search(r"^run 1 completed: (\d+) of \1 items$", out, flags=re.M), out
    assert re.search(r"^\d+ requests, \d+ saved, efficiency \d+%$", out, flags=re.M)
    assert out.rstrip().endswith("complete")

    out = run_example(pause_resume, tmp_path, simulator)
    assert out.strip() == "run 2 completed"

    # a flaky day: half the requests answer 5xx, and the scan does not retry them
    httpx.post(f"{simulator}/_sim/faults", json={"error_rate": 0.5}).raise_for_status()
    try:
        out = run_example(replay, tmp_path, simulator)
    finally:
        httpx.post(f"{simulator}/_sim/faults", json={"error_rate": 0.0}).raise_for_status()
    failed, child = map(int, re.fullmatch(r"replayed (\d+) failed items as run (\d+)\n", out).groups())
    with sqlite3.connect(tmp_path / "runs.db") as db:
        parent, spec = db.execute("SELECT parent_id, spec FROM runs WHERE id=?", (child,)).fetchone()
        graph = db.execute("SELECT data FROM artifacts WHERE run_id=? AND kind='task_graph'", (child,)).fetchone()
        chosen = db.execute("SELECT count(*) FROM items WHERE run_id=3 AND state='failed' "
                            "AND error_class IN ('server', 'timeout')").fetchone()[0]
    assert parent == 3 and json.loads(spec)["replay_of"]["where"] == "error=server|timeout"
    assert 0 < chosen <= failed and json.loads(graph[0])["planned"] == chosen   # the chosen failed items, copied

    out = run_example(sync_wrapper, tmp_path, simulator)
    count, complete = re.fullmatch(r"(\d+) findings, complete=(True|False), \d+ requests\n", out).groups()
    assert int(count) == len(found) and complete == "True"


def test_the_readme_examples_type_check_against_the_public_api(tmp_path):
    """What a user's editor and CI see: the examples pass mypy with the project's settings."""
    files = []
    for i, block in enumerate(readme_examples()):
        path = tmp_path / f"example_{i}.py"
        path.write_text(block)
        files.append(str(path))
    checked = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                              "--cache-dir", str(ROOT / ".mypy_cache"), *files],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
