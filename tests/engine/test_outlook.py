"""The budget outlook (windows needed, next reset, ETA with the waits) in the headless progress line
and the console's status line, for a scan larger than its rate-limit budget."""

from __future__ import annotations

import asyncio
import functools
import re
import time
from datetime import UTC, datetime

import httpx

from console.panes.header import RunHeader
from engine import api
from engine.api import Engine
from engine.config import load_config
from engine.github import GitHubClient
from engine.jobs.ioc_scan.scan import DEFAULT_IOCS, ScanTargets, build_spec
from engine.models import Counts, RateLimitGauge, RunInfo, RunSnapshot, RunState
from engine.outlook import outlook_text
from engine.progress import _line
from engine.runner import Runner
from engine.sim import SimConfig, create_app


class ShiftedClock:
    """Epoch time the test moves forward: the reset comes when the test says so."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


async def test_a_scan_larger_than_the_budget_shows_the_windows_and_the_next_reset(tmp_path, monkeypatch):
    """12 repositories need more core requests than 0.8 × 12 = 9. Once the budget is spent the
    items wait (deferred, no worker held) for a reset an hour away on a clock that moves only
    when the test says; the test reads the progress line there, then lets each hour pass as the
    scan spends each window's budget (it needs several)."""
    clock = ShiftedClock()
    monkeypatch.setattr(api, "Runner", functools.partial(Runner, clock=clock))
    app = create_app(SimConfig(repos=12, seed=11, core_limit=12), clock=clock)
    config = load_config(None, env={}, overrides={"time_scale": 0.01, "max_concurrent_requests": 5,
                                                  "rate_limit_buffer": 0.8})
    async with await Engine.open(tmp_path / "scan.db", config) as engine:
        client = GitHubClient("http://sim", "sim-token", config=config, transport=httpx.ASGITransport(app),
                              clock=clock)
        spec = build_spec(ScanTargets(orgs=["acme"]), [DEFAULT_IOCS], api_url="http://sim",
                          include_archived=True, include_forks=True)
        handle = await engine.start(await engine.create_run("ioc-scan", spec), github=client)
        core = client._limiter.bucket("core")
        deadline = time.monotonic() + 60       # a safety net only: the run reaches this state and stays
        while True:
            snap = await handle.source.snapshot()
            spent = core.known and core.pending == 0 and core.estimated_used() >= core.budget
            if spent and snap.counts.finished > 0 and outlook_text(snap):
                break
            assert time.monotonic() < deadline, "the scan never waited for the reset"
            await asyncio.sleep(0.01)
        reset = datetime.fromtimestamp(core.reset_at, UTC).strftime("%H:%M:%S UTC")
        # the total still grows (repositories not listed yet), so the count of windows is rough
        shown = re.compile(rf"core: ~?(\d+) windows, next reset {reset} \(in [0-9hms]+\)")
        line = _line(snap)
        assert (found := shown.search(line)) and int(found[1]) >= 2, line
        header = RunHeader.header_line(snap, mode="live", readonly=False).plain
        assert (found := shown.search(header)) and int(found[1]) >= 2, header
        assert snap.counts.failed == 0          # waiting for the reset is not a failure
        # each time the budget is spent again (the scan needs several windows), the hour passes
        deadline = time.monotonic() + 120      # a safety net only
        while not handle.task.done():
            if core.known and core.pending == 0 and core.estimated_used() >= core.budget:
                clock.shift = max(clock.shift, core.reset_at + 60 - time.time())
            assert time.monotonic() < deadline, "the scan never finished"
            await asyncio.sleep(0.01)
        assert await handle.wait() is RunState.COMPLETED
        await client.aclose()
        assert outlook_text(await handle.source.snapshot()) == ""     # a finished run has no outlook
    stats = (await httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://sim").get(
        "/_sim/stats")).json()
    assert stats["violations"] == 0 and stats["limit_responses"]["primary"] == 0


def snapshot(*, finished: int, left: int, requests: int, used: int, items_per_s: float = 10.0) -> RunSnapshot:
    now = 1_700_000_000.0
    run = RunInfo(id=1, kind="ioc-scan", state=RunState.RUNNING, created_at=now, spec={})
    return RunSnapshot(run=run, counts=Counts(total=finished + left, pending=left, done=finished),
                       items_per_s=items_per_s, api_requests=requests, taken_at=now,
                       rate_limits=[RateLimitGauge("core", 5000, 5000 - used, used, now + 600, None, 0.8, 3600.0)])


def test_the_eta_counts_the_waits_for_resets():
    """3,000 requests sent for 1,000 items at 30 a second, 2,000 items left: 6,000 more requests.
    1,000 of this window's 4,000 go in 33 s, then 9m27s waiting for the reset at 10 min; 4,000 in
    the next window (2m13s), then 57m47s waiting for its reset; the last 1,000 in 33 s."""
    text = outlook_text(snapshot(finished=1000, left=2000, requests=3000, used=3000))
    assert text.startswith("core: 3 windows, next reset ")
    assert text.endswith("(in 10m00s), ETA 1h10m with 1h07m waiting"), text


def test_a_run_inside_its_budget_adds_nothing_to_the_progress_line():
    """100 more requests with 3,900 of the budget left: nothing to say. With 50 left: a second window."""
    assert outlook_text(snapshot(finished=100, left=100, requests=100, used=100)) == ""
    assert outlook_text(snapshot(finished=100, left=100, requests=100, used=3950)).startswith("core: 2 windows, ")
