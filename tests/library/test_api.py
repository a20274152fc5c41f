"""The public Python API against a simulator on loopback: what a script relies on."""

from __future__ import annotations

import httpx
import pytest

import engine
from engine import BatchConfig, BatchProcessingError, Engine, InputError, RunState
from tests.loopback import loopback_simulator


@pytest.fixture(scope="module")
def simulator():
    with loopback_simulator("--repos", "8", "--seed", "6") as url:
        yield url


@pytest.fixture
def env(monkeypatch, simulator):
    for name in ("GITHUB_TOKEN", "GH_TOKEN", "BATCHDECK_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BATCHDECK_API_URL", simulator)
    monkeypatch.setattr("engine.github.auth._token_from_gh_cli", lambda *a, **k: None)
    return simulator


def test_every_public_name_resolves_and_nothing_else_is_exported():
    for name in engine.__all__:
        assert getattr(engine, name) is not None
    with pytest.raises(AttributeError):
        engine.Runner  # noqa: B018 - the runner is not public


async def test_no_token_is_one_clear_error_before_anything_runs(env, tmp_path):
    async with Engine.open(tmp_path / "r.db") as eng:
        with pytest.raises(InputError, match="no GitHub token"):
            await eng.scan(org="acme")
        assert await eng.runs() == []


async def test_repositories_batch_returns_the_planted_findings_of_those_repositories(env, tmp_path):
    truth = httpx.get(f"{env}/_sim/truth").json()["findings"]
    repo = truth[0]["repo"]
    async with Engine.open(tmp_path / "r.db") as eng:
        matches = await eng.process_repositories_batch([repo], token="sim-token")
    expected = {(t["package"], t["version"], t["path"]) for t in truth if t["repo"] == repo}
    assert {(m.package_name, m.version, m.file_path) for m in matches} == expected


async def test_an_incomplete_scan_is_an_error_not_an_empty_result(env, tmp_path):
    httpx.post(f"{env}/_sim/faults", json={"error_rate": 1.0}).raise_for_status()
    try:
        async with Engine.open(tmp_path / "r.db") as eng:
            with pytest.raises(BatchProcessingError, match="did not cover every repository"):
                await eng.process_repositories_batch(["acme/anything"], token="sim-token",
                                                     config=BatchConfig(retry_attempts=0))
    finally:
        httpx.post(f"{env}/_sim/faults", json={"error_rate": 0.0}).raise_for_status()


async def test_a_paused_run_resumes_in_a_new_engine_as_after_a_crash(env, tmp_path):
    async with Engine.open(tmp_path / "r.db") as eng:
        run = await eng.scan(org="acme", token="sim-token")
        await run.pause()
        first = run.id
        assert (await eng.store.require_run(first)).state is RunState.PAUSED
    async with Engine.open(tmp_path / "r.db") as eng:      # a new process, as after a crash
        again = await eng.resume_run(first, connection=eng.connection(token="sim-token"))
        assert await again.wait() is RunState.COMPLETED
        metrics = await again.metrics()
        assert metrics.successful_requests > 0 and await again.complete()
