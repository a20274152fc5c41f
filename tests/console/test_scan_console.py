"""The console over an ioc-scan against the simulator: gauges, breakers and findings fill from a real run."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from console.app import BatchdeckApp
from console.panes.limits import RateLimitPane
from console.panes.rowtable import RowTable
from console.views.ioc_scan import FindingsScreen
from engine.api import Engine
from engine.config import load_config
from engine.jobs.ioc_scan.queries import findings as finding_rows
from engine.jobs.ioc_scan.scan import DEFAULT_IOCS, ScanTargets, build_spec, make_client
from engine.models import RunState
from engine.sim import FaultConfig, SimConfig, create_app


async def until(pilot, condition, what: str, bound: float = 60.0) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        await pilot.app.refresh_snapshot()
        await pilot.pause(0.05)


@pytest.fixture
async def engine(tmp_path):
    config = load_config(None, env={}, overrides={"max_concurrent_requests": 4, "max_concurrent_repos": 2})
    eng = await Engine.open(tmp_path / "scan.db", config)
    yield eng
    await eng.close()


class HoldOneTree:
    """ASGI wrapper: the tree requests of one repository (the tenth whose tree is asked for)
    wait for ``gate``, so the scan cannot finish before the test has paused it."""

    def __init__(self, app, nth: int = 10) -> None:
        self.app, self.nth = app, nth
        self.gate, self.holding = asyncio.Event(), asyncio.Event()
        self.trees: list[str] = []

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and "/git/trees/" in path:
            repo = path.split("/git/trees/")[0]
            if repo not in self.trees:
                self.trees.append(repo)
            if self.trees.index(repo) == self.nth - 1:
                self.holding.set()
                await self.gate.wait()
        await self.app(scope, receive, send)


async def test_a_scan_fills_the_gauges_pauses_on_space_and_shows_its_findings(engine, tmp_path):
    held = HoldOneTree(create_app(SimConfig(repos=80, seed=5, faults=FaultConfig(latency_ms=15))))
    app_sim = held
    spec = build_spec(ScanTargets(orgs=["acme"]), [DEFAULT_IOCS], api_url="http://sim", include_archived=True,
                      include_forks=True)
    client = make_client(engine, "http://sim", "tok", transport=httpx.ASGITransport(app_sim))
    run_id = await engine.create_run("ioc-scan", spec)
    handle = await engine.start(run_id, github=client)
    app = BatchdeckApp(engine, source=handle.source, export_dir=tmp_path)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            def resources() -> set[str]:
                return {g.resource for g in app.snapshot.rate_limits} if app.snapshot else set()

            await until(pilot, lambda: {"core", "graphql"} <= resources(), "core and graphql gauges")
            gauges = {g.resource: g for g in app.snapshot.rate_limits}
            assert 0 < gauges["core"].remaining < gauges["core"].limit == 5000
            text = str(app.screen.query_one(RateLimitPane).render())
            assert "core" in text and "graphql" in text
            assert {b.lane for b in app.snapshot.breakers} >= {"read"}

            await until(pilot, held.holding.is_set, "one repository's tree held: the scan cannot finish")
            await pilot.press("space")
            await until(pilot, lambda: app.snapshot.run.state is RunState.PAUSED, "paused")
            held.gate.set()
            # the state flips at once; in-flight items then finish and the pause checkpoint is committed
            deadline = time.monotonic() + 60
            while ((await engine.store.last_checkpoint(run_id)) or {}).get("reason") != "pause":
                assert time.monotonic() < deadline, "the pause checkpoint was never written"
                await pilot.pause(0.05)
            requests = client.counters.get("api_requests", 0) if hasattr(client, "counters") else None
            frozen = (await engine.store.counts(run_id)).done
            for _ in range(6):
                await pilot.app.refresh_snapshot()
                await pilot.pause(0.05)
            assert (await engine.store.counts(run_id)).done == frozen
            if requests is not None:
                assert client.counters.get("api_requests", 0) == requests   # paused: no request sent
            await pilot.press("space")
            await until(pilot, lambda: app.snapshot.run.state is RunState.COMPLETED, "completed", bound=120)
            # the state shows completed as the runner's last commit begins: read the findings once it ended
            assert await handle.wait() is RunState.COMPLETED
            findings = await finding_rows(engine.store, run_id, limit=1000)
            assert findings
            await pilot.press("f")
            await pilot.pause()
            assert isinstance(app.screen, FindingsScreen)
            screen = app.screen
            deadline = time.monotonic() + 20
            while (screen.fetching or len(screen.rows) < len(findings)) and time.monotonic() < deadline:
                await pilot.pause(0.05)
            assert len(screen.query_one(RowTable).lines) == len(findings)     # every finding of the run
            shown = {(r["repo"], r["package_name"]) for r in screen.shown}
            assert (findings[0]["repo"], findings[0]["package_name"]) in shown
    finally:
        if not handle.task.done():
            await handle.stop()
        await client.aclose()
