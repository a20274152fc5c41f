"""issue-sync against the simulator (in process, content-creation limits on, time scaled)."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import httpx
import pytest

from engine.jobs.issue_sync.cli import export_sync_map, pull, write_back
from engine.jobs.issue_sync.sample import write_sample_tree
from engine.jobs.issue_sync.tree import load_tree
from engine.models import RunState

EXAMPLE = Path(__file__).parents[2] / "sample_configs" / "planning"
MARKER = re.compile(r"<!-- batchdeck:id=(\S+) -->")
MUTATIONS = ("POST ", "PATCH ", "DELETE ", "PUT ")


def mutations(stats: dict) -> Counter:
    return Counter({k: v for k, v in stats["requests"].items() if k.startswith(MUTATIONS)})


def by_marker(issues: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for issue in issues:
        found = MARKER.search(issue["body"] or "")
        assert found, f"issue #{issue['number']} has no marker"
        out.setdefault(found.group(1), []).append(issue)
    return out


async def parents(kit, app, issues: list[dict]) -> dict[int, int]:
    """child number → parent number, read back from the simulator's sub-issue lists."""
    out = {}
    for issue in issues:
        page = 1
        while kids := await kit.sim_json(app, "GET", f"/repos/acme/plans/issues/{issue['number']}/sub_issues",
                                         params={"per_page": 100, "page": page}):
            out.update({k["number"]: issue["number"] for k in kids})
            page += 1
    return out


@pytest.fixture
def example(tmp_path) -> Path:
    return Path(shutil.copytree(EXAMPLE, tmp_path / "planning"))


async def test_the_example_syncs_once_within_the_limits_then_costs_nothing_then_patches_only_edits(
        engine, kit, example):
    app = kit.make_app()
    tree = load_tree(example)
    run_id, state = await kit.run_sync(engine, app, example)
    assert state is RunState.COMPLETED
    stats = await kit.sim_json(app, "GET", "/_sim/stats")
    assert stats["violations_by_kind"]["content_creation"] == 0 and stats["violations"] == 0
    issues = await kit.all_issues(app)
    found = by_marker(issues)
    assert set(found) == set(tree.nodes) and all(len(v) == 1 for v in found.values())   # each exactly once
    number = {sid: v[0]["number"] for sid, v in found.items()}
    parent_of = await parents(kit, app, issues)
    for node in tree.nodes.values():
        if node.kind == "task":
            epic = "epic:" + node.sid[5:].partition("/")[0]
            linked = parent_of[number[node.sid]]
            # directly under its epic, or under the epic's continuation issue (100 sub-issues per parent)
            assert linked == number[epic] or parent_of[linked] == number[epic]
    assert parent_of[number["epic:auth"]] == number["prd:platform"]
    closed = {sid for sid, n in tree.nodes.items() if n.closed}
    assert closed and all(found[sid][0]["state"] == "closed" for sid in closed)
    first = mutations(stats)

    _, state = await kit.run_sync(engine, app, example)          # nothing changed: nothing sent
    assert state is RunState.COMPLETED
    assert mutations(await kit.sim_json(app, "GET", "/_sim/stats")) == first

    edited = sorted(example.glob("epics/billing/0*.md"))[:10]
    for path in edited:
        path.write_text(path.read_text().replace("- it is tested", "- it is tested twice"))
    _, state = await kit.run_sync(engine, app, example)
    after = mutations(await kit.sim_json(app, "GET", "/_sim/stats"))
    assert after - first == Counter({"PATCH /repos/{o}/{r}/issues/{n}": 10})
    patched = [i for i in await kit.all_issues(app) if "tested twice" in (i["body"] or "")]
    assert sorted(i["number"] for i in patched) == sorted(
        number[f"task:billing/{p.stem}"] for p in edited)


@pytest.mark.parametrize("mode", ["reset", "502"])
async def test_lost_create_answers_are_reconciled_not_duplicated(engine, kit, tmp_path, mode):
    app = kit.make_app()
    root = write_sample_tree(tmp_path / "t", epics=2, tasks=30)
    await kit.sim_json(app, "POST", "/_sim/issue_faults", json={"every": 4, "limit": 6, "mode": mode})
    run_id, state = await kit.run_sync(engine, app, root)
    assert state is RunState.COMPLETED
    faults = await kit.sim_json(app, "GET", "/_sim/issue_faults")
    assert faults["responses_dropped"] == 6
    tree = load_tree(root)
    found = by_marker(await kit.all_issues(app))
    assert set(found) == set(tree.nodes) and all(len(v) == 1 for v in found.values())
    reconciled = await engine.store.fetchone(
        "SELECT count(*) FROM issue_sync_results WHERE run_id=? AND action='reconciled'", (run_id,))
    assert reconciled[0] == 6
    assert faults["sub_issue_links"] == sum(1 for n in tree.nodes.values() if n.parent)


async def test_checklist_mode_writes_children_into_the_parent_body(engine, kit, tmp_path):
    app = kit.make_app()
    root = write_sample_tree(tmp_path / "t", epics=1, tasks=6)
    run_id, state = await kit.run_sync(engine, app, root, links="checklist")
    assert state is RunState.COMPLETED
    section = (await engine.report(run_id))["sections"]["issue_sync"]      # the run report says the same
    assert section["actions"]["created"] == 8 and section["links"] == {"linked": 0, "checklist": 7, "pending": 0,
                                                                       "failed": 0}
    found = by_marker(await kit.all_issues(app))
    epic = found["epic:auth"][0]
    tasks = sorted(v[0]["number"] for sid, v in found.items() if sid.startswith("task:"))
    listed = sorted(int(n) for n in re.findall(r"^- \[[ x]\] #(\d+)$", epic["body"], re.M))
    assert listed == tasks
    assert (await kit.sim_json(app, "GET", "/_sim/issue_faults"))["sub_issue_links"] == 0


async def test_depends_on_becomes_a_line_with_the_issue_number(engine, kit, tmp_path):
    app = kit.make_app()
    root = write_sample_tree(tmp_path / "t", epics=1, tasks=12)
    await kit.run_sync(engine, app, root)
    tree = load_tree(root)
    found = by_marker(await kit.all_issues(app))
    node = next(n for n in tree.nodes.values() if n.depends_on)
    body = found[node.sid][0]["body"]
    for dep in node.depends_on:
        assert f"Depends on #{found[dep][0]['number']}" in body


async def test_write_back_export_and_pull(engine, kit, tmp_path):
    import httpx

    from engine.github import GitHubClient

    app = kit.make_app()
    root = write_sample_tree(tmp_path / "t", epics=1, tasks=4)
    await kit.run_sync(engine, app, root)
    tree = load_tree(root)
    assert await write_back(engine.store, tree, "acme/plans") == len([n for n in tree.nodes.values() if n.path])
    reread = load_tree(root)
    assert all(n.github and n.github.endswith(f"/issues/{i}") for i, n in
               ((int(n.github.rsplit('/', 1)[1]), n) for n in reread.nodes.values() if n.path))
    exported = tmp_path / "map.json"
    assert await export_sync_map(engine.store, "acme/plans", str(exported)) == len(tree.nodes)
    assert oct(exported.stat().st_mode & 0o777) == "0o600"
    # written-back URLs are not a change: a re-run sends nothing
    before = mutations(await kit.sim_json(app, "GET", "/_sim/stats"))
    await kit.run_sync(engine, app, root)
    assert mutations(await kit.sim_json(app, "GET", "/_sim/stats")) == before
    open_task = next(n for n in reread.nodes.values() if n.kind == "task" and not n.closed)
    number = int(open_task.github.rsplit("/", 1)[1])
    await kit.sim_json(app, "PATCH", f"/repos/acme/plans/issues/{number}", json={"state": "closed"})
    client = GitHubClient("http://sim", "t", time_scale=kit.SCALE, transport=httpx.ASGITransport(app))
    try:
        changes = await pull(engine.store, client, reread, "acme/plans", write=True)
    finally:
        await client.aclose()
    assert changes == [f"{open_task.path}: #{number} is closed → status: done"]
    assert "status: done" in (root / open_task.path).read_text()
    before = mutations(await kit.sim_json(app, "GET", "/_sim/stats"))
    await kit.run_sync(engine, app, root)          # the pulled status is already on GitHub
    assert mutations(await kit.sim_json(app, "GET", "/_sim/stats")) == before


async def test_a_server_stricter_than_documented_slows_the_writes_without_a_violation(engine, kit, tmp_path):
    # the simulator allows 6 creates a minute where the client expects GitHub's 80: it is refused,
    # pauses the write lane for the retry-after it is given, halves its budget, sends nothing while blocked.
    # A minute lasts 0.6 s here, so the client (a create every 10 ms at most) cannot help tripping it.
    scale = 0.01
    app = kit.make_app(scale, content_create_per_minute=6, secondary_penalty_s=10, secondary_retry_after="always")
    root = write_sample_tree(tmp_path / "t", epics=1, tasks=10)
    run_id, state = await kit.run_sync(engine, app, root, scale=scale)
    assert state is RunState.COMPLETED
    stats = await kit.sim_json(app, "GET", "/_sim/stats")
    assert stats["secondary_reasons"]["content_minute"] >= 1
    assert stats["violations_by_kind"]["content_creation"] == 0
    found = by_marker(await kit.all_issues(app))
    assert set(found) == set(load_tree(root).nodes) and all(len(v) == 1 for v in found.values())
    progress = await engine.store.fetchone("SELECT data FROM issue_sync_progress WHERE run_id=?", (run_id,))
    seen = json.loads(progress[0])
    assert seen["creates_left"] == 0 and seen["patches_left"] == 0
    counters = json.loads((await engine.store.fetchone("SELECT stats FROM runs WHERE id=?", (run_id,)))[0])
    assert counters["counters"]["secondary_limited"] == stats["limit_responses"]["secondary"]


async def test_an_issue_found_by_its_marker_is_brought_up_to_date_with_its_file(engine, kit, tmp_path):
    # a create whose answer was lost; before the retry, the file changed: the issue is found, not
    # created again, and patched to what the file now says
    app = kit.make_app()
    root = write_sample_tree(tmp_path / "t", epics=1, tasks=3)
    await kit.sim_json(app, "POST", "/_sim/issue_faults", json={"every": 1, "limit": 1, "mode": "502"})
    tree = load_tree(root)
    first = next(iter(tree.nodes))
    lost = await kit.sim_json(app, "POST", "/repos/acme/plans/issues",
                              json={"title": "old title", "body": f"old\n\n<!-- batchdeck:id={first} -->"})
    assert lost == {"message": "Server Error"}          # created, but the answer was a 502
    await engine.store.write("INSERT INTO issue_sync_intents VALUES ('acme/plans', ?, 0, 0)", (first,))
    run_id, state = await kit.run_sync(engine, app, root)
    assert state is RunState.COMPLETED
    found = by_marker(await kit.all_issues(app))
    assert len(found[first]) == 1
    assert found[first][0]["title"] == tree.nodes[first].title
    action = await engine.store.fetchone("SELECT action FROM issue_sync_results WHERE run_id=? AND sid=?",
                                         (run_id, first))
    assert action[0] == "reconciled"


async def test_stopping_during_a_write_pause_takes_effect_at_once_and_leaves_the_run_resumable(engine, kit, tmp_path):
    import asyncio

    import httpx

    from engine.github import GitHubClient
    from engine.jobs.issue_sync.kind import KIND

    # real time: the server allows one create a minute, so the second one pauses the write lane ~60 s
    app = kit.make_app(1.0, content_create_per_minute=1)
    root = write_sample_tree(tmp_path / "t", epics=1, tasks=2)
    tree = load_tree(root)
    spec = {"repo": "acme/plans", "root": str(root), "links": "sub-issues", "api_url": "http://sim",
            "nodes": [n.to_dict() for n in tree.nodes.values()]}
    run_id = await engine.create_run(KIND.name, spec)
    client = GitHubClient("http://sim", "t", time_scale=1.0, transport=httpx.ASGITransport(app))
    try:
        handle = await engine.start(run_id, github=client)
        for _ in range(600):                     # until the lane is paused by the refusal (not a timing guess)
            if any(v.name == "write" and v.paused_until for v in client.lanes()):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the write lane never paused")
        await handle.runner.stop("stopped by test")
        state = await asyncio.wait_for(handle.task, timeout=10)   # the pause is ~60 s: this is the interrupt
    finally:
        await client.aclose()
    assert state is RunState.PAUSED
    counts = await engine.store.counts(run_id)
    assert counts.pending > 0 and counts.in_flight == 0           # nothing lost, resumable


async def test_a_configured_cap_below_githubs_keeps_a_stricter_server_from_refusing(tmp_path, kit):
    # the same server as above (6 creates a minute where GitHub documents 80), but the team set
    # issue_sync.pacing.creates_per_minute to 5 in its config: no create is ever refused
    from engine.api import Engine

    scale = 0.01
    app = kit.make_app(scale, content_create_per_minute=6, secondary_penalty_s=10, secondary_retry_after="always")
    root = write_sample_tree(tmp_path / "t", epics=1, tasks=6)
    config = kit.sync_config(issue_sync={"pacing": {"creates_per_minute": 5}})
    async with await Engine.open(tmp_path / "capped.db", config) as engine:
        run_id, state = await kit.run_sync(engine, app, root, scale=scale)
        assert state is RunState.COMPLETED
        progress = await engine.store.fetchone("SELECT data FROM issue_sync_progress WHERE run_id=?", (run_id,))
    stats = await kit.sim_json(app, "GET", "/_sim/stats")
    assert stats["limit_responses"]["secondary"] == 0 and stats["violations"] == 0
    found = by_marker(await kit.all_issues(app))
    assert set(found) == set(load_tree(root).nodes) and all(len(v) == 1 for v in found.values())
    assert json.loads(progress[0])["budget_per_minute"] == 5       # what the view and the progress line show


class RefuseOneCreate(httpx.AsyncBaseTransport):
    """The simulator, except that GitHub refuses to create one item's issue (422, a hostile message)."""

    def __init__(self, app, sid: str) -> None:
        self.inner, self.marker = httpx.ASGITransport(app), f"batchdeck:id={sid} "

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/issues") and \
                self.marker in request.content.decode():
            return httpx.Response(422, json={"message": "Validation Failed \x1b[31mred", "errors": []})
        return await self.inner.handle_async_request(request)


async def test_a_refused_create_is_a_failed_item_its_dependents_wait_and_the_sync_says_so(
        engine, kit, tmp_path, capsys):
    from argparse import Namespace

    from engine.github import GitHubClient
    from engine.jobs.issue_sync.kind import KIND
    from engine.jobs.issue_sync.queries import item_rows
    from engine.kinds import ResultsRequest

    app = kit.make_app()
    root = write_sample_tree(tmp_path / "t", epics=1, tasks=4)
    (root / "epics/auth/003.md").write_text("---\nname: three\ndepends_on: [2]\n---\nafter two\n")
    tree = load_tree(root)
    spec = {"repo": "acme/plans", "root": str(root), "links": "sub-issues", "api_url": "http://sim",
            "nodes": [n.to_dict() for n in tree.nodes.values()]}
    run_id = await engine.create_run(KIND.name, spec)
    client = GitHubClient("http://sim", "t", config=engine.config, time_scale=kit.SCALE,
                          transport=RefuseOneCreate(app, "task:auth/002"))
    try:
        await (await engine.start(run_id, github=client)).wait()
    finally:
        await client.aclose()
    rows = {r["sid"]: r for r in await item_rows(engine.store, run_id)}
    assert rows["task:auth/002"]["state"] == "failed" and "Validation Failed" in rows["task:auth/002"]["error"]
    assert rows["task:auth/002"]["link"] == "pending" and rows["task:auth/001"]["link"] == "linked"
    assert rows["task:auth/003"]["state"] == "waiting"              # its body needs #<002>: not sent
    assert {r["state"] for sid, r in rows.items() if sid not in ("task:auth/002", "task:auth/003")} == {"created"}

    code = await KIND.results(ResultsRequest(engine=engine, run_id=run_id, args=Namespace()))
    err = capsys.readouterr().err
    assert code == 1                                              # failed items remain: never "in step"
    assert "4 created" in err and "1 failed" in err and "in step with" not in err
    assert "failed: epics/auth/002.md: " in err and "Validation Failed ␛[31mred" in err and "\x1b" not in err
    assert "1 item(s) wait on a failed one" in err
