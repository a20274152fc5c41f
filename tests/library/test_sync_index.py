"""The Python API's other two kinds: a planning tree synced into Issues, a codebase indexed."""

from __future__ import annotations

import httpx
import pytest

from engine import Engine, InputError, RunState
from engine.jobs.issue_sync.sample import write_sample_tree
from tests.loopback import loopback_simulator

SCALE = "0.0005"       # an hour of GitHub's limits lasts 1.8 s


@pytest.fixture
def simulator(monkeypatch):
    for name in ("GITHUB_TOKEN", "GH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with loopback_simulator("--repos", "2", "--seed", "1", "--time-scale", SCALE) as url:
        monkeypatch.setenv("BATCHDECK_API_URL", url)
        monkeypatch.setenv("BATCHDECK_TIME_SCALE", SCALE)
        yield url


async def test_a_tree_syncs_into_issues_once(simulator, tmp_path):
    tree = write_sample_tree(tmp_path / "plan", epics=1, tasks=6)
    repo = httpx.get(f"{simulator}/orgs/acme/repos", headers={"Authorization": "token t"}).json()[0]["full_name"]
    async with Engine.open(tmp_path / "r.db") as eng:
        run = await eng.sync(tree, repo=repo, token="sim-token")
        assert await run.wait() is RunState.COMPLETED
        assert await run.complete()
    issues = httpx.get(f"{simulator}/repos/{repo}/issues", params={"state": "all", "per_page": 100},
                       headers={"Authorization": "token t"}).json()
    titles = [i["title"] for i in issues]
    assert len(titles) == len(set(titles)) >= 8          # the PRD, the epic and 6 tasks, each once


async def test_a_bad_repo_name_is_one_line_before_anything_is_sent(simulator, tmp_path):
    tree = write_sample_tree(tmp_path / "plan", epics=1, tasks=2)
    async with Engine.open(tmp_path / "r.db") as eng:
        with pytest.raises(InputError, match="expected owner/name"):
            await eng.sync(tree, repo="not a repo", token="sim-token")
        assert await eng.runs() == []


async def test_a_codebase_is_indexed_and_its_symbols_found(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("import json\n\n\ndef parse_config(text):\n    return json.loads(text)\n")
    (src / "b.py").write_text("from a import parse_config\n\nclass Loader:\n    pass\n")
    async with Engine.open(tmp_path / "r.db") as eng:
        run = await eng.index(src, workers=1)
        assert await run.wait() is RunState.COMPLETED
        files = await run.rows("files")
        found = await run.rows("symbol", symbol="parse_config")
    assert sorted(f["path"] for f in files) == ["a.py", "b.py"]
    assert "a.py" in str(found)
