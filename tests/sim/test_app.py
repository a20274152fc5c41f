"""REST behaviour of the simulator: pagination, trees, blobs, contents, issues, search,
faults, the /_sim side door, the loopback server and the ``batchdeck sim`` CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import re

import httpx
import pytest

from engine.errors import InputError
from engine.sim import server as sim_server
from engine.sim.app import create_app
from engine.sim.config import FaultConfig, SimConfig, load_sim_config
from engine.sim.data import SimOrg
from engine.sim.faults import FaultInjector

LINK = re.compile(r'<([^>]+)>; rel="(\w+)"')


def links(response: httpx.Response) -> dict[str, str]:
    return {rel: url for url, rel in LINK.findall(response.headers.get("link", ""))}


# ---------------------------------------------------------------------------
# pagination

async def test_link_pagination_over_1050_repos_returns_each_exactly_once(make_client, kit):
    async with make_client(org=kit.wide_org(1050)) as c:
        seen: list[str] = []
        url: str | None = "/orgs/acme/repos?per_page=100&sort=full_name"
        pages = 0
        while url:
            r = await c.get(url)
            assert r.status_code == 200
            seen += [repo["full_name"] for repo in r.json()]
            url = links(r).get("next")
            pages += 1
        assert pages == 11
        assert len(seen) == 1050 and len(set(seen)) == 1050
        assert seen == sorted(seen)


async def test_link_header_has_githubs_rels_in_githubs_order(make_client, kit):
    async with make_client(org=kit.wide_org(95)) as c:
        first = await c.get("/orgs/acme/repos", params={"type": "all"})
        assert len(first.json()) == 30                       # GitHub's default page size
        assert [rel for _, rel in LINK.findall(first.headers["link"])] == ["next", "last"]
        middle = await c.get("/orgs/acme/repos", params={"type": "all", "page": 2})
        rels = LINK.findall(middle.headers["link"])
        assert [rel for _, rel in rels] == ["prev", "next", "last", "first"]
        assert "type=all" in rels[0][0] and "page=1" in rels[0][0] and "page=4" in rels[2][0]
        last = await c.get(links(middle)["last"])
        assert len(last.json()) == 5
        assert [rel for _, rel in LINK.findall(last.headers["link"])] == ["prev", "first"]
        capped = await c.get("/orgs/acme/repos", params={"per_page": 500})
        assert len(capped.json()) == 95 and "link" not in capped.headers


async def test_repo_listing_filters_and_sorts_like_github(client, make_client):
    r = await client.get("/orgs/acme/repos")
    assert [x["name"] for x in r.json()] == ["secret", "web", "old-fork"]   # created, newest first
    r = await client.get("/orgs/acme/repos", params={"type": "forks"})
    assert [x["name"] for x in r.json()] == ["old-fork"]
    r = await client.get("/users/acme/repos")                                # users: full_name, ascending
    assert [x["name"] for x in r.json()] == ["old-fork", "secret", "web"]
    assert (await client.get("/orgs/nobody/repos")).status_code == 404
    async with make_client(headers={}) as anonymous:
        r = await anonymous.get("/orgs/acme/repos")
        assert "secret" not in [x["name"] for x in r.json()]
        assert (await anonymous.get("/repos/acme/secret")).status_code == 404


# ---------------------------------------------------------------------------
# git data

def deep_org(kit, dirs: int, files_per_dir: int) -> SimOrg:
    files = {f"pkg{d:02d}/lib/file{f:03d}.txt": f"{d}/{f}\n".encode()
             for d in range(dirs) for f in range(files_per_dir)}
    return SimOrg(login="acme", id=1, repos=[kit.make_repo("acme", 7, "mono", files)])


async def test_truncated_tree_is_partial_and_its_subtrees_walk_to_every_file(make_client, kit):
    org = deep_org(kit, dirs=4, files_per_dir=30)          # 4*(30 files + lib dir) + 4 dirs = 128 entries
    config = SimConfig(faults=FaultConfig(truncate_tree_entries=50))
    async with make_client(config=config, org=org) as c:
        r = await c.get("/repos/acme/mono/git/trees/main", params={"recursive": "1"})
        body = r.json()
        assert body["truncated"] is True and len(body["tree"]) == 50

        found: set[str] = set()

        async def walk(sha: str, prefix: str) -> None:
            t = (await c.get(f"/repos/acme/mono/git/trees/{sha}")).json()
            assert t["truncated"] is False and t["sha"] == sha
            for e in t["tree"]:
                path = f"{prefix}{e['path']}"
                if e["type"] == "tree":
                    assert e["mode"] == "040000" and "size" not in e
                    await walk(e["sha"], path + "/")
                else:
                    assert e["size"] == len(org.repos[0].files[path].content)
                    found.add(path)

        await walk(body["sha"], "")
        assert found == set(org.repos[0].files)


async def test_tree_refs_and_recursive_flag(client):
    by_branch = (await client.get("/repos/acme/web/git/trees/main")).json()
    assert {e["path"] for e in by_branch["tree"]} == {"README.md", "logo.png", "package-lock.json", "services"}
    # like GitHub, any value of ``recursive`` recurses
    recursive = (await client.get("/repos/acme/web/git/trees/main", params={"recursive": "0"})).json()
    assert "services/api/src/index.js" in {e["path"] for e in recursive["tree"]}
    by_sha = (await client.get(f"/repos/acme/web/git/trees/{by_branch['sha']}")).json()
    assert by_sha["tree"] == by_branch["tree"]
    assert (await client.get("/repos/acme/web/git/trees/no-such-branch")).status_code == 404
    assert (await client.get("/repos/acme/secret/git/trees/main")).status_code == 409   # empty repo


async def test_blob_is_base64_in_60_char_lines_and_decodes_to_the_file(client, kit):
    org = kit.small_org()
    web = org.repo("web")
    for path in ("package-lock.json", "logo.png"):
        f = web.files[path]
        body = (await client.get(f"/repos/acme/web/git/blobs/{f.sha}")).json()
        assert body["encoding"] == "base64" and body["size"] == len(f.content) and body["sha"] == f.sha
        lines = body["content"].split("\n")
        assert lines[-1] == "" and all(len(line) <= 60 for line in lines) and len(lines[0]) == min(
            60, len(base64.b64encode(f.content)))
        assert base64.b64decode(body["content"]) == f.content
    other = org.repo("old-fork").files["requirements.txt"].sha
    assert (await client.get(f"/repos/acme/web/git/blobs/{other}")).status_code == 404
    raw = await client.get(f"/repos/acme/web/git/blobs/{web.files['README.md'].sha}",
                           headers={"Accept": "application/vnd.github.raw+json"})
    assert raw.content == kit.README


async def test_contents_file_directory_ref_and_size_limit(make_client, kit):
    big = b"x" * (1024 * 1024 + 1)
    org = SimOrg(login="acme", id=1, repos=[kit.make_repo("acme", 5, "app", {
        "a/package-lock.json": kit.LOCKFILE, "a/b/c.txt": b"c\n", "huge.bin": big})])
    async with make_client(org=org) as c:
        f = (await c.get("/repos/acme/app/contents/a/package-lock.json")).json()
        assert f["type"] == "file" and base64.b64decode(f["content"]) == kit.LOCKFILE
        listing = (await c.get("/repos/acme/app/contents/a")).json()
        assert [(e["name"], e["type"]) for e in listing] == [("b", "dir"), ("package-lock.json", "file")]
        root = (await c.get("/repos/acme/app/contents/")).json()
        assert {e["path"] for e in root} == {"a", "huge.bin"}
        assert (await c.get("/repos/acme/app/contents/a/b/c.txt", params={"ref": "main"})).status_code == 200
        assert (await c.get("/repos/acme/app/contents/a/b/c.txt", params={"ref": "nope"})).status_code == 404
        assert (await c.get("/repos/acme/app/contents/missing.txt")).status_code == 404
        too_big = await c.get("/repos/acme/app/contents/huge.bin")
        assert too_big.status_code == 403 and too_big.json()["errors"][0]["code"] == "too_large"
        obj = await c.get("/repos/acme/app/contents/huge.bin", headers={"Accept": "application/vnd.github.object"})
        assert obj.json()["encoding"] == "none" and obj.json()["content"] == ""
        raw = await c.get("/repos/acme/app/contents/huge.bin", headers={"Accept": "application/vnd.github.raw"})
        assert raw.content == big


# ---------------------------------------------------------------------------
# issues and search

async def test_issue_create_update_list_and_errors(client, make_client):
    created = await client.post("/repos/acme/web/issues",
                                json={"title": "Compromised: left-pad 1.3.0", "body": "found", "labels": ["ioc"]})
    assert created.status_code == 201
    issue = created.json()
    assert created.headers["location"] == issue["url"] and issue["number"] == 1 and issue["state"] == "open"
    assert [label["name"] for label in issue["labels"]] == ["ioc"]
    await client.post("/repos/acme/web/issues", json={"title": "Second"})
    closed = await client.patch("/repos/acme/web/issues/1", json={"state": "closed", "body": "fixed"})
    assert closed.json()["state"] == "closed" and closed.json()["closed_at"] and closed.json()["body"] == "fixed"
    open_titles = [i["title"] for i in (await client.get("/repos/acme/web/issues")).json()]
    assert open_titles == ["Second"]
    all_titles = [i["title"] for i in (await client.get("/repos/acme/web/issues", params={"state": "all"})).json()]
    assert all_titles == ["Second", "Compromised: left-pad 1.3.0"]
    assert (await client.get("/repos/acme/web/issues/1")).json()["state"] == "closed"
    assert (await client.get("/repos/acme/web/issues/9")).status_code == 404
    assert (await client.post("/repos/acme/web/issues", json={"body": "no title"})).status_code == 422
    assert (await client.post("/repos/acme/web/issues", content=b"{nope")).status_code == 400
    archived = await client.post("/repos/acme/old-fork/issues", json={"title": "x"})
    assert archived.status_code == 403 and "archived" in archived.json()["message"]
    assert (await client.get("/repos/acme/web")).json()["open_issues_count"] == 1
    async with make_client(headers={}) as anonymous:
        assert (await anonymous.post("/repos/acme/web/issues", json={"title": "x"})).status_code == 401


async def test_search_issues_qualifiers(client):
    for title, labels in [("IOC: event-stream 3.3.6 in web", ["ioc"]), ("Unrelated chore", []),
                          ("ioc: flatmap-stream in web", ["ioc", "npm"])]:
        await client.post("/repos/acme/web/issues", json={"title": title, "labels": labels})
    await client.patch("/repos/acme/web/issues/3", json={"state": "closed"})

    async def search(q: str) -> list[str]:
        r = await client.get("/search/issues", params={"q": q})
        assert r.status_code == 200 and r.headers["x-ratelimit-resource"] == "search"
        body = r.json()
        assert body["total_count"] == len(body["items"]) and body["incomplete_results"] is False
        return sorted(i["title"] for i in body["items"])

    assert await search('repo:acme/web "event-stream 3.3.6" in:title is:issue') == ["IOC: event-stream 3.3.6 in web"]
    assert await search("repo:acme/web label:ioc state:open") == ["IOC: event-stream 3.3.6 in web"]
    assert await search("repo:acme/web label:npm is:closed") == ["ioc: flatmap-stream in web"]
    assert await search("repo:acme/other ioc") == []
    assert await search("repo:acme/web is:pr") == []
    assert len(await search("repo:acme/web")) == 3
    missing = await client.get("/search/issues")
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "q"


# ---------------------------------------------------------------------------
# faults

async def statuses_under(kit, error_rate: float, seed: int, n: int) -> tuple[list[int], dict]:
    app = create_app(SimConfig(seed=seed, faults=FaultConfig(error_rate=error_rate)), kit.small_org())
    async with kit.client_for(app, headers=kit.TOKEN) as c:
        codes = [(await c.get("/repos/acme/web")).status_code for _ in range(n)]
        return codes, (await c.get("/_sim/stats")).json()


async def test_error_rate_is_applied_reproducibly_by_seed(kit):
    codes, stats = await statuses_under(kit, 0.3, seed=7, n=300)
    failures = [c for c in codes if c != 200]
    assert set(failures) <= {500, 502, 503} and len(set(failures)) == 3
    assert stats["faults_injected"]["error"] == len(failures)
    assert 60 <= len(failures) <= 120                       # ~30% of 300
    injector = FaultInjector(FaultConfig(error_rate=0.3), seed=7, started_at=0)
    assert len(failures) == sum(injector.decide(0) is not None for _ in range(300))
    again, _ = await statuses_under(kit, 0.3, seed=7, n=300)
    assert again == codes
    other, _ = await statuses_under(kit, 0.3, seed=8, n=300)
    assert other != codes


async def test_connection_reset_raises_in_the_client(make_client):
    async with make_client(config=SimConfig(faults=FaultConfig(reset_rate=1.0))) as c:
        with pytest.raises(ConnectionResetError):
            await c.get("/repos/acme/web")
        stats = (await c.get("/_sim/stats")).json()
        assert stats["faults_injected"]["reset"] == 1


async def test_timeout_hangs_then_504_and_bursts_follow_the_clock(make_client, clock):
    async with make_client(config=SimConfig(faults=FaultConfig(timeout_rate=1.0, hang_s=0.001))) as c:
        r = await c.get("/repos/acme/web")
        assert r.status_code == 504 and "in time" in r.json()["message"]
        assert r.headers["x-ratelimit-resource"] == "core"
    bursts = SimConfig(faults=FaultConfig().merged({"bursts": {"every_s": 10, "duration_s": 2, "error_rate": 1.0}}))
    async with make_client(config=bursts) as c:
        assert (await c.get("/repos/acme/web")).status_code >= 500       # t=0: inside the burst
        clock.advance(5)
        assert (await c.get("/repos/acme/web")).status_code == 200      # t=5: between bursts
        clock.advance(6)
        assert (await c.get("/repos/acme/web")).status_code >= 500       # t=11: the next burst


def test_latency_distributions_have_the_configured_mean():
    for dist in ("lognormal", "normal", "uniform"):
        faults = FaultConfig().merged({"latency": {"dist": dist, "mean_ms": 50, "sd_ms": 10}})
        injector = FaultInjector(faults, seed=3, started_at=0)
        samples = [injector.latency_s() * 1000 for _ in range(4000)]
        mean = sum(samples) / len(samples)
        sd = (sum((s - mean) ** 2 for s in samples) / len(samples)) ** 0.5
        assert 48 < mean < 52 and 8.5 < sd < 11.5, dist
    assert FaultInjector(FaultConfig(latency_ms=25), seed=1, started_at=0).latency_s() == 0.025


async def test_faults_change_at_runtime_and_bad_keys_are_named(client):
    assert (await client.get("/repos/acme/web")).status_code == 200
    r = await client.post("/_sim/faults", json={"error_rate": 1.0})
    assert r.status_code == 200 and r.json()["error_rate"] == 1.0
    assert (await client.get("/repos/acme/web")).status_code in (500, 502, 503)
    bad = await client.post("/_sim/faults", json={"eror_rate": 0.1})
    assert bad.status_code == 422 and "eror_rate" in bad.json()["message"]
    await client.post("/_sim/faults", json={"error_rate": 0})
    assert (await client.get("/repos/acme/web")).status_code == 200


# ---------------------------------------------------------------------------
# the side door

async def test_stats_count_endpoints_and_reset_zeroes_them(client, kit):
    org = kit.small_org()
    sha = org.repo("web").files["README.md"].sha
    await client.get("/repos/acme/web")
    await client.get(f"/repos/acme/web/git/blobs/{sha}")
    await client.get(f"/repos/acme/web/git/blobs/{sha}")
    await client.get("/repos/acme/web/contents/README.md")
    await client.get("/no/such/endpoint")
    stats = (await client.get("/_sim/stats")).json()
    assert stats["requests_total"] == 5
    assert stats["requests"]["GET /repos/{o}/{r}/git/blobs/{sha}"] == 2
    assert stats["requests"]["GET /repos/{o}/{r}/contents/{path}"] == 1
    assert stats["requests"]["unmatched"] == 1
    assert stats["blob_fetches"] == {sha: 3}
    assert stats["points_used"]["core"] == 5 and stats["peak_concurrency"] == 1
    truth = (await client.get("/_sim/truth")).json()
    assert truth == {"findings": org.truth, "malformed": org.malformed}
    before = int((await client.get("/rate_limit")).headers["x-ratelimit-remaining"])
    assert before == 4995
    await client.post("/_sim/reset")
    stats = (await client.get("/_sim/stats")).json()
    assert stats["requests_total"] == 0 and stats["blob_fetches"] == {}
    assert (await client.get("/rate_limit")).json()["resources"]["core"]["remaining"] == 5000
    assert (await client.get("/repos/acme/web")).status_code == 200      # data kept


# ---------------------------------------------------------------------------
# loopback server and CLI

async def test_running_simulator_serves_over_loopback_with_a_real_client(kit):
    config = SimConfig(faults=FaultConfig(reset_rate=0.0))
    async with sim_server.running_simulator(config, kit.small_org(), port=0) as srv:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", srv.base_url) and srv.port > 0
        async with httpx.AsyncClient(base_url=srv.base_url, headers=kit.TOKEN) as c:
            r = await c.get("/orgs/acme/repos")
            assert r.status_code == 200 and len(r.json()) == 3
            assert r.json()[0]["url"].startswith(srv.base_url)
            results = await asyncio.gather(*(c.get("/repos/acme/web") for _ in range(20)))
            assert {x.status_code for x in results} == {200}
            await c.post("/_sim/faults", json={"reset_rate": 1.0})
            with pytest.raises(httpx.TransportError):
                await c.get("/repos/acme/web")
            await c.post("/_sim/faults", json={"reset_rate": 0.0})
            stats = (await c.get("/_sim/stats")).json()
            assert stats["requests_total"] == 22 and stats["faults_injected"]["reset"] == 1
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as c:
            await c.get(srv.base_url + "/rate_limit")


def test_cli_rejects_bad_arguments_with_one_line_and_exit_2(capsys, tmp_path):
    assert sim_server.main(["--repos", "many"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--repos" in err
    bad = tmp_path / "sim.yaml"
    bad.write_text("time_scale: -1\n")
    assert sim_server.main(["--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(bad) in err and "time_scale" in err
    assert sim_server.main(["--repos-dir", str(tmp_path / "missing")]) == 2
    assert "repos_dir" in capsys.readouterr().err


def test_cli_prints_the_base_url_first_and_stops_on_sigterm(tmp_path, kit):
    import os
    import signal
    import subprocess
    import sys
    import time

    code = ("import sys; from engine.sim import server; from conftest import small_org; "
            "server.build_org = lambda c: small_org(); sys.exit(server.main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-c", code, "--port", "0", "--time-scale", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                [os.path.dirname(__file__), os.getcwd()])})
    try:
        first = proc.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", first), first
        r = httpx.get(first + "/rate_limit", headers=kit.TOKEN)
        assert r.status_code == 200 and "." in r.headers["x-ratelimit-reset"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            time.sleep(0.1)


def test_config_file_loading_names_file_and_key(tmp_path):
    good = tmp_path / "sim.yaml"
    good.write_text("sim:\n  org: umbrella\n  time_scale: 0.01\n  faults:\n    latency: {dist: normal, mean_ms: 5}\n")
    cfg = load_sim_config(good)
    assert cfg.org == "umbrella" and cfg.time_scale == 0.01 and cfg.faults.latency.dist == "normal"
    as_json = tmp_path / "sim.json"
    as_json.write_text(json.dumps({"core_limit": 100, "secondary_retry_after": "never"}))
    assert load_sim_config(as_json).core_limit == 100
    for text, key in [("core_limt: 5\n", "core_limt"), ("faults: {error_rate: 2}\n", "faults.error_rate"),
                      ("faults: {latency: {dist: pareto}}\n", "faults.latency.dist"),
                      ("secondary_retry_after: maybe\n", "secondary_retry_after"), ("repos: [1]\n", "repos")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(InputError) as info:
            load_sim_config(bad)
        assert str(bad) in str(info.value) and key in str(info.value)
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [\n")
    with pytest.raises(InputError, match="broken.yaml"):
        load_sim_config(broken)
    with pytest.raises(InputError, match="nothing.yaml"):
        load_sim_config(tmp_path / "nothing.yaml")
