"""A simulator with one empty repository and time scaled down, an engine, and a sync driver."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from engine.api import Engine
from engine.config import load_config
from engine.github import GitHubClient
from engine.jobs.issue_sync.kind import KIND
from engine.jobs.issue_sync.tree import load_tree
from engine.models import RunState
from engine.sim import SimConfig, create_app
from engine.sim.data import SimOrg, SimRepo

SCALE = 0.0005          # an hour of GitHub's limits lasts 1.8 s


def plans_org() -> SimOrg:
    return SimOrg(login="acme", id=9001, repos=[SimRepo(id=501, name="plans", owner="acme", full_name="acme/plans")])


def make_app(scale: float = SCALE, **config: Any):
    config.setdefault("secondary_retry_after", "sometimes")
    return create_app(SimConfig(time_scale=scale, **config), plans_org())


async def sim_json(app, method: str, path: str, **kw: Any) -> Any:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://sim",
                                 headers={"Authorization": "token t"}) as c:
        return (await c.request(method, path, **kw)).json()


async def all_issues(app) -> list[dict]:
    out, page = [], 1
    while True:
        chunk = await sim_json(app, "GET", "/repos/acme/plans/issues",
                               params={"state": "all", "per_page": 100, "page": page})
        if not chunk:
            return out
        out += chunk
        page += 1


def sync_config(**overrides: Any):
    return load_config(None, env={}, overrides={"retry_delay_base": 0.1, "max_concurrent_requests": 8,
                                                "github": {"time_scale": SCALE}, **overrides})


async def run_sync(engine: Engine, app, tree_dir: Path, *, links: str = "sub-issues",
                   scale: float = SCALE) -> tuple[int, RunState]:
    tree = load_tree(tree_dir)
    spec = {"repo": "acme/plans", "root": str(tree_dir), "links": links, "api_url": "http://sim",
            "nodes": [n.to_dict() for n in tree.nodes.values()]}
    run_id = await engine.create_run(KIND.name, spec)
    client = GitHubClient("http://sim", "sync-token", config=engine.config, time_scale=scale,
                          transport=httpx.ASGITransport(app))
    try:
        state = await (await engine.start(run_id, github=client)).wait()
    finally:
        await client.aclose()
    return run_id, state


@pytest.fixture
async def engine(tmp_path):
    eng = await Engine.open(tmp_path / "sync.db", sync_config())
    yield eng
    await eng.close()


@pytest.fixture
def kit() -> SimpleNamespace:
    return SimpleNamespace(make_app=make_app, sim_json=sim_json, all_issues=all_issues, run_sync=run_sync,
                           sync_config=sync_config, SCALE=SCALE)


Helper = Callable[..., Any]
