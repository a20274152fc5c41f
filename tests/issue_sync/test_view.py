"""The console view of a sync run: every item with its state, issue number, parent and link; `/` filters;
titles from the files are drawn as plain text. Opened with `f` in the console on a finished run, and on a
run held at a gate mid-links; the tests wait on the view's own ``loaded`` event (set when the rows are on
screen) and on the gate, never on time."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from textual.app import App

from console.app import BatchdeckApp
from console.session import ConsoleSession
from console.views import load_view
from console.views.issue_sync import IssueSyncView, pace_text
from engine.github import GitHubClient
from engine.jobs.issue_sync.kind import KIND
from engine.jobs.issue_sync.sample import write_sample_tree
from engine.jobs.issue_sync.tree import load_tree
from engine.models import RunState

HOSTILE = "[bold]Loud[/bold] \x1b[31mred\x1b[0m \u202eevil"
LOAD_DEADLINE_S = 30


class ViewHost(App[None]):
    """The smallest console that can show a view: it pushes it and runs its workers like the app does."""

    def __init__(self, session: ConsoleSession, run: Any) -> None:
        super().__init__()
        self.session, self.run_info = session, run
        self.errors: list[BaseException] = []

    def on_mount(self) -> None:
        self.push_screen(load_view("issue-sync")(self.session, self.run_info))

    def run_task(self, work, *, name: str, group: str = "ops", exclusive: bool = False):
        async def wrapped():
            try:
                return await work
            except Exception as exc:      # the app's report_error: the test asserts there was none
                self.errors.append(exc)
                self.screen.loaded.set()  # nothing more will come: let the test see the error
        return self.run_worker(wrapped(), name=name, group=group, exclusive=exclusive)


def _screen_text(table) -> list[str]:
    return ["".join(segment.text for segment in table.render_line(y)) for y in range(table.size.height)]


async def test_the_view_lists_every_item_with_its_issue_number_parent_and_link(engine, kit, tmp_path):
    app = kit.make_app()
    root = write_sample_tree(tmp_path / "t", epics=1, tasks=4)
    (root / "epics/auth/002.md").write_text(f"---\nname: two\ntitle: {HOSTILE!r}\n---\nbody\n".replace("'", '"'))
    run_id, state = await kit.run_sync(engine, app, root)
    assert state is RunState.COMPLETED
    tree = load_tree(root)
    issues = {i["title"]: i["number"] for i in await kit.all_issues(app)}

    host = BatchdeckApp(engine, run_id=run_id, refresh_hz=0, export_dir=tmp_path)
    async with host.run_test(size=(160, 30)) as pilot:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("f")                                           # the console's results key
        await pilot.pause()
        view = host.screen
        assert isinstance(view, IssueSyncView)
        await asyncio.wait_for(view.loaded.wait(), LOAD_DEADLINE_S)
        await pilot.pause()
        rows = {r["sid"]: r for r in view.table.lines}
        assert list(rows) == ["prd:platform", "epic:auth", "task:auth/001", "task:auth/002", "task:auth/003",
                              "task:auth/004"]                           # tree order: PRD, epic, its tasks
        for sid, row in rows.items():
            node = tree.nodes[sid]
            assert row["state"] == "created" and row["number"] == issues[node.title]
            if node.parent:
                assert row["parent_number"] == issues[tree.nodes[node.parent].title] and row["link"] == "linked"
        text = "\n".join(_screen_text(view.table))
        task = rows["task:auth/003"]
        assert f"#{task['number']}" in text and "linked" in text
        # the file's title, markup and escapes included, is shown as it is, controls made visible
        assert "[bold]Loud[/bold] ␛[31mred␛[0m <U+202E>evil" in text
        header = str(view.query_one("#sync-title").render())
        assert "6 created" in header and "0 failed" in header
        assert "all writes sent" in str(view.query_one("#sync-pace").render())

        await pilot.press("slash", *"003")
        assert [r["sid"] for r in view.shown] == ["task:auth/003"]
        await pilot.press("enter", "escape")                             # esc clears the filter first
        assert len(view.shown) == 6
        await pilot.press("escape")                                      # then goes back
        await pilot.pause()
        assert host.screen is host.main


class HoldLastLink(httpx.AsyncBaseTransport):
    """The simulator, with the ``hold_at``-th sub-issue POST held until the test releases it."""

    def __init__(self, app, hold_at: int) -> None:
        self.inner, self.hold_at, self.links = httpx.ASGITransport(app), hold_at, 0
        self.reached, self.release = asyncio.Event(), asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/sub_issues"):
            self.links += 1
            if self.links == self.hold_at:
                self.reached.set()
                await self.release.wait()
        return await self.inner.handle_async_request(request)


async def links_committed(engine, handle, n: int) -> None:
    """Until ``n`` links are in the database: each answered link is recorded by its worker, then
    committed by the run's writer (flushed here rather than waited for)."""
    while True:
        await handle.runner.recorder.flush()
        row = await engine.store.fetchone("SELECT count(*) FROM issue_sync_links WHERE repo='acme/plans'")
        if row[0] >= n:
            return
        await asyncio.sleep(0.01)       # a worker still between the answer and recording it


async def test_a_running_sync_shows_the_links_phase_the_write_budget_and_the_finish(engine, kit, tmp_path):
    app = kit.make_app()
    root = write_sample_tree(tmp_path / "t", epics=1, tasks=4)
    tree = load_tree(root)
    links = sum(1 for n in tree.nodes.values() if n.parent)
    spec = {"repo": "acme/plans", "root": str(root), "links": "sub-issues", "api_url": "http://sim",
            "nodes": [n.to_dict() for n in tree.nodes.values()]}
    run_id = await engine.create_run(KIND.name, spec)
    gate = HoldLastLink(app, hold_at=links)           # every issue exists; one link is still to send
    client = GitHubClient("http://sim", "t", config=engine.config, time_scale=kit.SCALE, transport=gate)
    try:
        handle = await engine.start(run_id, github=client)
        await asyncio.wait_for(gate.reached.wait(), LOAD_DEADLINE_S)
        # the other links were answered; their rows reach the database with the writer's next commit
        await asyncio.wait_for(links_committed(engine, handle, links - 1), LOAD_DEADLINE_S)
        run = await engine.store.require_run(run_id)
        host = ViewHost(ConsoleSession(engine), run)
        async with host.run_test(size=(200, 30)) as pilot:
            view = host.screen
            await asyncio.wait_for(view.loaded.wait(), LOAD_DEADLINE_S)
            await pilot.pause()
            assert not host.errors
            pace = str(view.query_one("#sync-pace").render())
            # the pace is the last one the job reported (at most every 0.5 s, and whenever the phase changes)
            left = int(pace.removeprefix("phase: links · ").split(" creates")[0])
            assert 1 <= left <= links and " creates and 0 updates left" in pace
            assert "write budget 80/min" in pace and "500/h" in pace and "finish ≈" in pace
            states = {r["sid"]: (r["state"], r["link"]) for r in view.table.lines}
            assert all(state == "created" for state, _ in states.values())
            assert sorted(link for _, link in states.values()).count("pending") == 1
        gate.release.set()
        assert await asyncio.wait_for(handle.task, LOAD_DEADLINE_S) is RunState.COMPLETED
    finally:
        gate.release.set()
        await client.aclose()


def test_the_pace_line_says_phase_writes_left_budget_and_finish():
    progress = {"creates_left": 40, "patches_left": 3, "budget_per_minute": 40.0, "budget_per_hour": 500,
                "used_last_minute": 12, "used_last_hour": 300, "finish_in_s": 1500.0, "finish_at": 0.0,
                "phase": "links"}
    line = pace_text(progress, RunState.RUNNING)
    assert line.startswith("phase: links · 40 creates and 3 updates left")
    assert "write budget 40/min (12 used), 500/h (300 used)" in line and "(in 25 min)" in line
    assert "resume" in pace_text(progress, RunState.PAUSED)
    assert pace_text({}, RunState.COMPLETED) == "no writes were needed"
