"""SIGKILL a sync at many points (one of them between a POST and its recording), resume each time:
exactly one issue per item, every link present. The sync runs in a subprocess held at a gate
(tests/issue_sync/kill_driver.py) that the test kills; the simulator runs in its own process so
what was created survives each kill."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from engine.jobs.issue_sync.sample import write_sample_tree
from engine.jobs.issue_sync.tree import load_tree

DRIVER = Path(__file__).with_name("kill_driver.py")
ROOT = Path(__file__).parents[2]
# (mutation number within that process, before it is sent | after its answer, before it is recorded)
KILL_POINTS = [(1, "after"), (2, "before"), (3, "after"), (1, "before"), (4, "after"), (6, "after"),
               (2, "after"), (9, "before"), (5, "after"), (12, "after")]
GATE_DEADLINE_S = 120


def _sync(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(DRIVER), *args], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for_gate(proc: subprocess.Popen, mark: Path) -> bool:
    """True once the process is held at its gate; False if it finished first (no N-th mutation)."""
    deadline = time.monotonic() + GATE_DEADLINE_S
    while time.monotonic() < deadline:
        if mark.exists():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    raise AssertionError("the sync neither reached its gate nor finished")


def test_sigkill_at_ten_points_then_resume_gives_one_issue_per_item_and_every_link(tmp_path):
    repos = tmp_path / "repos" / "plans"
    repos.mkdir(parents=True)
    (repos / "README.md").write_text("plans\n")
    root = write_sample_tree(tmp_path / "tree", epics=2, tasks=16)
    config = tmp_path / "fast.yaml"
    config.write_text("github:\n  time_scale: 0.0005\n")
    sim = subprocess.Popen([sys.executable, "-m", "engine.sim.server", "--repos-dir", str(tmp_path / "repos"),
                            "--time-scale", "0.0005"], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        url = sim.stdout.readline().strip()
        assert url.startswith("http"), url
        args = ["sync", str(root), "--repo", "acme/plans", "--db", str(tmp_path / "sync.db"), "--api-url", url,
                "--token", "crash-token", "--config", str(config), "--headless"]
        killed = []
        for i, (n, when) in enumerate(KILL_POINTS):
            mark = tmp_path / f"gate-{i}"
            env = {**os.environ, "SYNC_KILL_AT": str(n), "SYNC_KILL_WHEN": when, "SYNC_MARK": str(mark)}
            proc = _sync(args, env)
            if _wait_for_gate(proc, mark):
                os.kill(proc.pid, signal.SIGKILL)
                killed.append(mark.read_text().strip())
            else:
                _, err = proc.communicate(timeout=30)
                assert proc.returncode == 0, err      # finished before its N-th mutation: must be complete
            proc.wait(timeout=30)
        assert len(killed) >= 8, killed
        assert any(k.startswith("after POST") and k.endswith("/issues") for k in killed)   # POST, not recorded
        # the last killed run is resumed as is (`batchdeck resume RUN`), then a fresh sync has nothing to send
        with sqlite3.connect(tmp_path / "sync.db") as db:
            # the newest run that was killed (a later one may have finished on its own)
            last_run = db.execute("SELECT max(id) FROM runs WHERE state != 'completed'").fetchone()[0]
        resumed = _sync(["resume", str(last_run), "--db", str(tmp_path / "sync.db"), "--api-url", url,
                         "--config", str(config), "--headless"],
                        {**os.environ, "SYNC_KILL_AT": "0", "GITHUB_TOKEN": "crash-token"})
        _, err = resumed.communicate(timeout=GATE_DEADLINE_S)
        assert resumed.returncode == 0, err
        with httpx.Client(base_url=url) as c:
            before = c.get("/_sim/stats").json()["requests"]
        final = _sync(args, {**os.environ, "SYNC_KILL_AT": "0"})
        _, err = final.communicate(timeout=GATE_DEADLINE_S)
        assert final.returncode == 0, err
        with httpx.Client(base_url=url) as c:
            after = c.get("/_sim/stats").json()["requests"]
        assert {k: v for k, v in after.items() if not k.startswith("GET")} == \
            {k: v for k, v in before.items() if not k.startswith("GET")}

        tree = load_tree(root)
        with httpx.Client(base_url=url, headers={"Authorization": "token check"}) as c:
            issues = c.get("/repos/acme/plans/issues", params={"state": "all", "per_page": 100}).json()
            markers = [re.search(r"batchdeck:id=(\S+) -->", i["body"]).group(1) for i in issues]
            assert sorted(markers) == sorted(tree.nodes)             # exactly one issue per item
            number = dict(zip(markers, (i["number"] for i in issues), strict=True))
            for node in tree.nodes.values():
                if node.parent:
                    parent = c.get(f"/repos/acme/plans/issues/{number[node.sid]}/parent").json()
                    assert parent["number"] == number[node.parent], node.sid
            assert c.get("/_sim/stats").json()["violations"] == 0
    finally:
        sim.terminate()
        sim.wait(timeout=10)
