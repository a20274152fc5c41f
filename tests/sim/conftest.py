"""Fixtures for the simulator tests: small hand-built orgs and an in-process client.

The orgs are built from the real data model (``engine.sim.data``) with known
file contents, so a test can compare what the API serves with what was put in.
Helpers reach tests through the ``kit`` fixture (pytest runs with
``--import-mode=importlib``, so test modules cannot import this file).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace

import httpx
import pytest

from engine.sim.app import create_app
from engine.sim.config import SimConfig
from engine.sim.data import SimOrg, SimRepo

TOKEN = {"Authorization": "token sim-test-token"}
LOCKFILE = b'{\n  "name": "web",\n  "lockfileVersion": 3,\n  "packages": {}\n}\n'
README = b"# web\n\nA small service.\n"


def make_repo(org: str, rid: int, name: str, files: dict[str, bytes] | None = None, **kw) -> SimRepo:
    repo = SimRepo(id=rid, name=name, owner=org, full_name=f"{org}/{name}", **kw)
    for path, content in (files or {}).items():
        repo.add(path, content)
    return repo


def small_org() -> SimOrg:
    """Three repos: one with nested files, one archived fork, one private and empty."""
    web = make_repo("acme", 101, "web", {
        "README.md": README,
        "package-lock.json": LOCKFILE,
        "services/api/package-lock.json": LOCKFILE,
        "services/api/src/index.js": b"console.log('hi')\n",
        "logo.png": b"\x89PNG\r\n\x1a\n\0\0\0binary",
    }, language="JavaScript", created_at="2021-03-01T00:00:00Z")
    old = make_repo("acme", 102, "old-fork", {"requirements.txt": b"requests==2.31.0\n"},
                    archived=True, fork=True, created_at="2019-05-01T00:00:00Z")
    secret = make_repo("acme", 103, "secret", {}, private=True, created_at="2022-01-01T00:00:00Z")
    return SimOrg(login="acme", id=9001, repos=[web, old, secret],
                  truth=[{"repo": "acme/web", "path": "package-lock.json", "package": "x", "version": "1"}],
                  malformed=[{"repo": "acme/old-fork", "path": "requirements.txt", "reason": "test"}])


def wide_org(count: int) -> SimOrg:
    return SimOrg(login="acme", id=9001, repos=[
        make_repo("acme", 1000 + i, f"repo-{i:05d}", {"README.md": f"# {i}\n".encode()},
                  created_at=f"2020-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z")
        for i in range(count)
    ])


class FakeClock:
    """A clock tests move by hand, so windows and resets need no sleeping."""

    def __init__(self, start: float = 1_763_800_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def client_for(app, **kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim", **kw)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(clock: FakeClock) -> Callable[..., httpx.AsyncClient]:
    """``make_client(config=None, org=None, headers=TOKEN)`` → a client on a fresh app."""
    def make(config: SimConfig | None = None, org: SimOrg | None = None, headers: dict | None = None,
             **app_kw) -> httpx.AsyncClient:
        app = create_app(config or SimConfig(), org or small_org(), clock=app_kw.pop("clock", clock))
        client = client_for(app, headers=TOKEN if headers is None else headers)
        client.app = app  # type: ignore[attr-defined]
        return client
    return make


@pytest.fixture
async def client(make_client) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as c:
        yield c


@pytest.fixture
def kit() -> SimpleNamespace:
    return SimpleNamespace(TOKEN=TOKEN, LOCKFILE=LOCKFILE, README=README, make_repo=make_repo,
                           small_org=small_org, wide_org=wide_org, client_for=client_for)
