"""ioc-scan end to end against the simulator (in process): truth, fetch-once, limits, re-scan cost."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from engine.api import Engine
from engine.config import load_config
from engine.jobs.ioc_scan.scan import (
    DEFAULT_IOCS,
    ScanTargets,
    build_spec,
    findings,
    make_client,
    parse_failures,
)
from engine.models import RunState
from engine.sim import SimConfig, create_app
from engine.sim.app import build_org
from engine.sim.faults import FailRequests


def scan_config(**overrides):
    return load_config(
        None, env={}, overrides={"retry_delay_base": 0.1, "max_concurrent_requests": 20, **overrides}
    )


async def sim_get(app, path):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://sim") as client:
        if path.startswith("POST "):
            return (await client.post(path[5:])).json()
        return (await client.get(path)).json()


async def run_scan(engine, app, *, token="sim-token", transport_app=None, **spec_kw):
    spec = build_spec(ScanTargets(orgs=["acme"]), [DEFAULT_IOCS], api_url="http://sim", **spec_kw)
    client = make_client(engine, "http://sim", token, transport=httpx.ASGITransport(transport_app or app))
    run_id = await engine.create_run("ioc-scan", spec)
    try:
        state = await (await engine.start(run_id, github=client)).wait()
    finally:
        await client.aclose()
    return run_id, state


def as_set(matches):
    return {(m.repo, m.file_path, m.package_name, m.version, m.kind, m.line_number) for m in matches}


@pytest.fixture(scope="module")
def org_app():
    return create_app(SimConfig(repos=500, seed=11))


async def test_a_500_repo_org_matches_the_truth_fetching_each_blob_once(org_app, tmp_path):
    app = org_app
    await sim_get(app, "POST /_sim/reset")
    async with await Engine.open(tmp_path / "scan.db", scan_config()) as engine:
        run_id, state = await run_scan(engine, app, include_archived=True, include_forks=True)
        assert state is RunState.COMPLETED
        truth = await sim_get(app, "/_sim/truth")
        stats = await sim_get(app, "/_sim/stats")
        got = as_set(await findings(engine.store, run_id))
        expected = {
            (t["repo"], t["path"], t["package"], t["version"], t["kind"], t["line"])
            for t in truth["findings"]
        }
        assert len(expected) > 100
        assert got == expected
        failures = {(f["repo"], f["file_path"]) for f in await parse_failures(engine.store, run_id)}
        assert failures == {(m["repo"], m["path"]) for m in truth["malformed"]}
        assert stats["violations"] == 0
        assert stats["blob_fetches"] and max(stats["blob_fetches"].values()) == 1  # no file fetched twice
        assert stats["graphql_queries"] > 0
        first_points = sum(stats["points_used"].values())
        counts = await engine.store.counts(run_id)
        assert counts.failed == 0 and counts.balanced()

        # the unchanged org again: trees answer 304 from the ETag cache, blobs come from the sha cache
        await sim_get(app, "POST /_sim/reset")
        run2, state2 = await run_scan(engine, app, include_archived=True, include_forks=True)
        assert state2 is RunState.COMPLETED
        stats2 = await sim_get(app, "/_sim/stats")
        assert as_set(await findings(engine.store, run2)) == expected
        assert sum(stats2["points_used"].values()) <= 0.05 * first_points
        assert not stats2["blob_fetches"]
        report = await engine.report(run2)
        assert report["api_requests_saved"] > 0


async def test_rest_only_path_finds_the_same_and_filters_archived_and_forks(tmp_path):
    """Every file through the blob endpoint: more than GitHub's 900 REST points a minute, so the
    read lane meets secondary limits and pauses (time scaled by 1/100 on both sides)."""
    app = create_app(SimConfig(repos=300, seed=11, core_limit=100000, time_scale=0.01))
    config = scan_config(enable_cross_repo_batching=False, time_scale=0.01)
    async with await Engine.open(tmp_path / "rest.db", config) as engine:
        run_id, state = await run_scan(engine, app)
        assert state is RunState.COMPLETED
        truth = await sim_get(app, "/_sim/truth")
        stats = await sim_get(app, "/_sim/stats")
        assert stats["violations"] == 0
        got = as_set(await findings(engine.store, run_id))
        archived_or_fork = {t["repo"] for t in truth["findings"]} - {m[0] for m in got}
        expected = {
            (t["repo"], t["path"], t["package"], t["version"], t["kind"], t["line"])
            for t in truth["findings"]
            if t["repo"] not in archived_or_fork
        }
        assert got == expected and archived_or_fork  # some planted repos were archived or forks
        assert stats["graphql_queries"] == 0 and max(stats["blob_fetches"].values()) == 1


async def test_a_bad_token_stops_the_run_with_one_request_and_a_clear_message(tmp_path):
    app = create_app(SimConfig(repos=20, seed=2))
    async with await Engine.open(tmp_path / "auth.db", scan_config()) as engine:
        run_id, state = await run_scan(engine, app, token="bad-token")
        assert state is RunState.FAILED
        run = await engine.store.get_run(run_id)
        assert "401" in run.message and "bad-token" not in run.message
        stats = await sim_get(app, "/_sim/stats")
        assert stats["requests_total"] == 1  # no retry storm


async def test_lockfiles_past_graphqls_512000_byte_cut_are_read_whole(tmp_path):
    """package-lock.json, pnpm-lock.yaml and yarn.lock of 600 KB-1 MiB with the compromised package past
    byte 512,000: GraphQL's Blob.text stops there (isTruncated), the scan reads them whole."""
    app = create_app(SimConfig(repos=100, seed=11))
    org = app.state.sim.org
    late = []
    for t in org.truth:
        data = org.repo(t["repo"].split("/")[1]).files[t["path"]].content
        if 600_000 <= len(data) <= 1 << 20 and t["kind"] == "locked":
            assert len(b"\n".join(data.split(b"\n")[: t["line"] - 1])) > 512_000
            late.append(t)
    assert {t["path"] for t in late} == {"package-lock.json", "pnpm-lock.yaml", "yarn.lock"}
    async with await Engine.open(tmp_path / "large.db", scan_config()) as engine:
        run_id, state = await run_scan(engine, app, include_archived=True, include_forks=True)
        assert state is RunState.COMPLETED
        got = as_set(await findings(engine.store, run_id))
        for t in late:
            assert (t["repo"], t["path"], t["package"], t["version"], t["kind"], t["line"]) in got
        failures = {(f["repo"], f["file_path"]) for f in await parse_failures(engine.store, run_id)}
        assert failures == {(m["repo"], m["path"]) for m in org.malformed}
        stats = await sim_get(app, "/_sim/stats")
        assert stats["graphql_queries"] > 0 and stats["violations"] == 0


@pytest.fixture(scope="module")
def listing_org():
    """A 230-repo org (three listing pages of 100), generated once (~2.5 s) for the listing tests: each
    gets its own simulator app (stats, limits, faults) over it, and a scan only reads the org."""
    return build_org(listing_sim())


def listing_sim() -> SimConfig:
    return SimConfig(repos=230, seed=3, core_limit=100000)


def truth_of(truth, repos=None):
    return {(t["repo"], t["path"], t["package"], t["version"], t["kind"], t["line"])
            for t in truth["findings"] if repos is None or t["repo"] in repos}


async def test_a_listing_page_that_keeps_failing_is_a_coverage_gap_not_a_failed_run(listing_org, tmp_path):
    """Page 3 of the org listing answers 500 every time: the scan still scans pages 1-2 and
    their findings, and names the page in its failed items (exit 1 from the CLI)."""
    app = create_app(listing_sim(), listing_org)
    flaky = FailRequests(app, "/orgs/acme/repos?type=all&per_page=100&page=3", status=500)
    async with await Engine.open(tmp_path / "list.db", scan_config()) as engine:
        run_id, state = await run_scan(engine, app, transport_app=flaky, include_archived=True, include_forks=True)
        assert state is RunState.COMPLETED
        failed = await engine.store.failed_items(run_id)
        assert [f["key"] for f in failed] == ["list:org/acme?page=3"]
        assert "GitHub server error 500" in failed[0]["last_error"] and "page=3" in failed[0]["last_error"]
        assert flaky.failed > 1                      # retried before giving up
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://sim",
                                     headers={"Authorization": "Bearer sim-token"}) as sim:
            listed = {r["full_name"] for page in (1, 2)
                      for r in (await sim.get(f"/orgs/acme/repos?type=all&per_page=100&page={page}")).json()}
        truth = await sim_get(app, "/_sim/truth")
        expected = truth_of(truth, listed)
        assert len(expected) > 50
        assert as_set(await findings(engine.store, run_id)) == expected


async def test_a_listing_page_that_fails_then_answers_loses_nothing(listing_org, tmp_path):
    app = create_app(listing_sim(), listing_org)
    flaky = FailRequests(app, "/orgs/acme/repos?type=all&per_page=100&page=2", status=502, times=2)
    async with await Engine.open(tmp_path / "list2.db", scan_config()) as engine:
        run_id, state = await run_scan(engine, app, transport_app=flaky, include_archived=True, include_forks=True)
        assert state is RunState.COMPLETED and flaky.failed == 2
        assert not await engine.store.failed_items(run_id)
        assert as_set(await findings(engine.store, run_id)) == truth_of(await sim_get(app, "/_sim/truth"))


async def test_a_cut_blob_that_cannot_be_read_whole_is_a_coverage_gap_not_a_parse_error(tmp_path):
    app = create_app(SimConfig(repos=100, seed=11))
    org = app.state.sim.org
    repo, path, sha = next((r.full_name, p, f.sha) for r in org.repos for p, f in r.files.items()
                           if p == "pnpm-lock.yaml" and 600_000 <= f.size <= 1 << 20)
    broken = FailRequests(app, f"/git/blobs/{sha}", status=503)
    async with await Engine.open(tmp_path / "gap.db", scan_config()) as engine:
        run_id, state = await run_scan(engine, app, transport_app=broken, include_archived=True, include_forks=True)
        assert state is RunState.COMPLETED
        failed = await engine.store.failed_items(run_id)
        assert [f["key"] for f in failed] == [f"file:{repo}:{path}"]
        assert "GitHub server error 503" in failed[0]["last_error"]
        assert (repo, path) not in {(f["repo"], f["file_path"]) for f in await parse_failures(engine.store, run_id)}


async def test_a_rescan_asks_only_what_changed(tmp_path):
    """Second scan of a 120-repo org where one repository lost a lockfile: head commits by GraphQL
    (100 a query), one tree request (the changed repository), findings equal to the new truth."""
    app = create_app(SimConfig(repos=120, seed=4))
    org = app.state.sim.org
    async with await Engine.open(tmp_path / "rescan.db", scan_config()) as engine:
        run1, state = await run_scan(engine, app, include_archived=True, include_forks=True)
        assert state is RunState.COMPLETED
        truth = await sim_get(app, "/_sim/truth")
        assert as_set(await findings(engine.store, run1)) == truth_of(truth)

        gone = next(t for t in truth["findings"] if t["kind"] == "locked" and "/" not in t["path"]
                    and len(org.repo(t["repo"].split("/")[1]).files) < 50)
        repo = org.repo(gone["repo"].split("/")[1])
        del repo.files[gone["path"]]
        repo._dirs = repo._dir_by_sha = repo._root_entries = None     # what SimRepo.add resets
        app.state.sim._repo_blobs.pop(repo.full_name, None)
        await sim_get(app, "POST /_sim/reset")
        run2, state2 = await run_scan(engine, app, include_archived=True, include_forks=True)
        assert state2 is RunState.COMPLETED
        stats = await sim_get(app, "/_sim/stats")
        trees = {k: v for k, v in stats["requests"].items() if "/git/trees/" in k}
        assert sum(trees.values()) == 1                     # only the changed repository's tree
        assert stats["requests_total"] <= 120 / 20
        expected = {f for f in truth_of(truth) if (f[0], f[1]) != (gone["repo"], gone["path"])}
        assert as_set(await findings(engine.store, run2)) == expected


class HoldRequests:
    """ASGI wrapper holding requests that contain ``match`` until the test opens ``gate``;
    they are then answered 503 (the server failed while the run was being stopped)."""

    def __init__(self, app, match: str) -> None:
        self.app, self.match = app, match
        self.gate, self.reached = asyncio.Event(), asyncio.Event()
        self.failing = FailRequests(app, match, status=503)

    async def __call__(self, scope, receive, send):
        target = scope.get("path", "") + "?" + scope.get("query_string", b"").decode()
        if scope["type"] == "http" and self.match in target:
            self.reached.set()
            await self.gate.wait()
            return await self.failing(scope, receive, send)
        await self.app(scope, receive, send)


async def test_a_resumed_scan_does_not_list_again_what_it_listed(listing_org, tmp_path):
    """Stopped while page 3 of the listing is in flight (held, then failing), after pages 1
    and 2 were listed: the resume requests page 3 only, and finds everything."""
    app = create_app(listing_sim(), listing_org)
    held = HoldRequests(app, "/orgs/acme/repos?type=all&per_page=100&page=3")
    spec = build_spec(ScanTargets(orgs=["acme"]), [DEFAULT_IOCS], api_url="http://sim", include_archived=True,
                      include_forks=True)
    async with await Engine.open(tmp_path / "resume.db", scan_config()) as engine:
        run_id = await engine.create_run("ioc-scan", spec)
        client = make_client(engine, "http://sim", "sim-token", transport=httpx.ASGITransport(held))
        handle = await engine.start(run_id, github=client)
        await held.reached.wait()

        async def page_state(page: int) -> str | None:
            row = await engine.store.fetchone("SELECT state FROM items WHERE run_id=? AND key=?",
                                              (run_id, f"list:org/acme?page={page}"))
            return row[0] if row else None

        for _ in range(600):                  # page 2 answered and recorded (bounded: 30 s)
            if await page_state(2) == "done":
                break
            await asyncio.sleep(0.05)
        assert await page_state(2) == "done"
        stopping = asyncio.create_task(handle.stop())
        held.gate.set()
        assert await stopping is not RunState.COMPLETED
        await client.aclose()
        assert await page_state(3) != "done"

        await sim_get(app, "POST /_sim/reset")
        client = make_client(engine, "http://sim", "sim-token", transport=httpx.ASGITransport(app))
        try:
            state = await (await engine.resume(run_id, github=client)).wait()
        finally:
            await client.aclose()
        assert state is RunState.COMPLETED
        stats = await sim_get(app, "/_sim/stats")
        assert stats["requests"]["GET /orgs/{org}/repos"] == 1
        assert as_set(await findings(engine.store, run_id)) == truth_of(await sim_get(app, "/_sim/truth"))



async def test_github_answers_graphql_without_a_token_with_401_and_rest_from_the_60_an_hour_bucket():
    """The simulator keeps GitHub's rule the unauthenticated scan below relies on."""
    app = create_app(SimConfig(repos=3, seed=5))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://sim") as sim:
        graphql = await sim.post("/graphql", json={"query": "{ viewer { login } }"})
        listing = await sim.get("/orgs/acme/repos")
    assert graphql.status_code == 401
    assert listing.status_code == 200 and listing.headers["x-ratelimit-limit"] == "60"
    assert listing.headers["x-ratelimit-resource"] == "core"


async def test_a_scan_without_a_token_reads_through_rest_only_and_matches_the_truth(tmp_path):
    """GraphQL needs a token (401 without one): an unauthenticated scan must not ask it at all —
    not for head commits, not for files — and still find everything it can see. The simulator's
    unauthenticated limit is raised so a small org fits (github.com: 60 requests an hour)."""
    app = create_app(SimConfig(repos=20, seed=11, unauthenticated_limit=100000))
    async with await Engine.open(tmp_path / "anon.db", scan_config()) as engine:
        run_id, state = await run_scan(engine, app, token=None, include_archived=True, include_forks=True)
        assert state is RunState.COMPLETED
        stats = await sim_get(app, "/_sim/stats")
        assert stats["graphql_queries"] == 0 and "POST /graphql" not in stats["requests"]
        assert "401" not in stats["statuses"] and stats["violations"] == 0
        # without a token GitHub lists, and shows, the public repositories only
        public = {r.full_name for r in app.state.sim.org.repos if not r.private}
        truth = await sim_get(app, "/_sim/truth")
        expected = truth_of(truth, public)
        assert expected and len(public) < 20
        assert as_set(await findings(engine.store, run_id)) == expected
        failures = {(f["repo"], f["file_path"]) for f in await parse_failures(engine.store, run_id)}
        assert failures == {(m["repo"], m["path"]) for m in truth["malformed"] if m["repo"] in public}
        assert (await engine.store.counts(run_id)).failed == 0


async def test_two_orgs_behind_a_router_are_each_read_through_their_own_client(tmp_path):
    """Several orgs in one run (one App installation each): every GraphQL query (blobs,
    head commits) goes to the client of the org it reads, never mixing orgs of two
    installations in one query, and the findings are the truth of both orgs."""
    from engine.github.router import OwnerRouter

    apps = {org: create_app(SimConfig(org=org, repos=30, seed=seed)) for org, seed in (("acme", 5), ("beta", 6))}
    spec = build_spec(ScanTargets(orgs=list(apps)), [DEFAULT_IOCS], api_url="http://acme.sim",
                      include_archived=True, include_forks=True)
    async with await Engine.open(tmp_path / "two.db", scan_config()) as engine:
        router = OwnerRouter({org: make_client(engine, f"http://{org}.sim", "sim-token",
                                               transport=httpx.ASGITransport(app)) for org, app in apps.items()})
        run_id = await engine.create_run("ioc-scan", spec)
        try:
            state = await (await engine.start(run_id, github=router)).wait()
        finally:
            await router.aclose()
        assert state is RunState.COMPLETED
        assert await engine.store.failed_items(run_id) == []
        truth = set()
        for app in apps.values():
            truth |= truth_of(await sim_get(app, "/_sim/truth"))
            assert (await sim_get(app, "/_sim/stats"))["graphql_queries"] > 0
        assert truth and as_set(await findings(engine.store, run_id)) == truth
