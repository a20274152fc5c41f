"""Every REST shape the simulator serves parses with githubkit's generated models.

githubkit's models are generated from GitHub's own OpenAPI description, so a
missing required field or a wrongly typed value fails ``model_validate``. On
top of that, :func:`assert_github_shape` rejects keys the description does not
know, which catches invented fields that plain validation would ignore.

The installed models describe API version 2026-03-10, so every test runs twice:
with ``X-GitHub-Api-Version: 2026-03-10`` (shapes must match exactly) and with
no header, i.e. GitHub's default 2022-11-28, where only the fields 2026-03-10
removed (``rate``, ``has_downloads``, ``assignee``) may be extra, and must be there.
"""

from __future__ import annotations

from typing import Any

import pytest
from githubkit_schemas.latest import models as gh
from pydantic import BaseModel

from engine.sim.config import SimConfig

REMOVED_IN_2026 = frozenset({"rate", "has_downloads", "assignee"})
VERSION = "2026-03-10"
_legacy = False   # set by the ``version_headers`` fixture for the test being run


def assert_github_shape(model: type[BaseModel], data: Any, path: str = "$") -> BaseModel:
    obj = model.model_validate(data)
    _known_keys_only(obj, data, path)
    return obj


def _known_keys_only(obj: BaseModel, data: dict[str, Any], path: str) -> None:
    by_key = {(f.alias or name): name for name, f in type(obj).model_fields.items()}
    unknown = set(data) - set(by_key)
    if _legacy:
        unknown -= REMOVED_IN_2026
    assert not unknown, f"{path} ({type(obj).__name__}): keys GitHub does not send: {sorted(unknown)}"
    for key, value in data.items():
        if key not in by_key:
            continue
        attr = getattr(obj, by_key[key])
        if isinstance(attr, BaseModel) and isinstance(value, dict):
            _known_keys_only(attr, value, f"{path}.{key}")
        elif isinstance(attr, list) and isinstance(value, list):
            for i, (a, v) in enumerate(zip(attr, value, strict=True)):
                if isinstance(a, BaseModel) and isinstance(v, dict):
                    _known_keys_only(a, v, f"{path}.{key}[{i}]")


@pytest.fixture(autouse=True)
def _strict_by_default() -> None:
    global _legacy
    _legacy = False


@pytest.fixture(params=["2026-03-10", "default"])
def version_headers(request) -> dict[str, str]:
    global _legacy
    _legacy = request.param == "default"
    headers = {"Authorization": "token fidelity"}
    if not _legacy:
        headers["X-GitHub-Api-Version"] = VERSION
    return headers


@pytest.fixture
async def client(make_client, version_headers):
    async with make_client(headers=version_headers) as c:
        yield c


async def test_repositories(client, make_client):
    listing = (await client.get("/orgs/acme/repos")).json()
    assert len(listing) == 3
    for item in listing:
        repo = assert_github_shape(gh.MinimalRepository, item)
        assert repo.owner.type == "Organization" and repo.permissions.pull is True
    assert_github_shape(gh.MinimalRepository, (await client.get("/users/acme/repos")).json()[0])
    full = assert_github_shape(gh.FullRepository, (await client.get("/repos/acme/web")).json())
    assert full.default_branch == "main" and full.organization.login == "acme"
    async with make_client(headers={k: v for k, v in client.headers.items() if k.startswith("x-github")}) as anon:
        public = (await anon.get("/repos/acme/web")).json()
        assert "permissions" not in public
        assert_github_shape(gh.FullRepository, public)


async def test_git_trees_and_blobs(client):
    tree = assert_github_shape(gh.GitTree, (await client.get("/repos/acme/web/git/trees/main?recursive=1")).json())
    blobs = [e for e in tree.tree if e.type == "blob"]
    assert blobs and all(e.size is not None and e.url for e in blobs)
    blob = assert_github_shape(gh.Blob, (await client.get(f"/repos/acme/web/git/blobs/{blobs[0].sha}")).json())
    assert blob.encoding == "base64"


async def test_contents(client):
    assert_github_shape(gh.ContentFile, (await client.get("/repos/acme/web/contents/README.md")).json())
    for item in (await client.get("/repos/acme/web/contents/services/api")).json():
        assert_github_shape(gh.ContentDirectoryItems, item)


async def test_issues_and_search(client):
    created = assert_github_shape(gh.Issue, (await client.post(
        "/repos/acme/web/issues", json={"title": "IOC hit", "labels": ["ioc"]})).json())
    assert created.user is not None and created.labels
    closed = (await client.patch("/repos/acme/web/issues/1", json={"state": "closed"})).json()
    assert assert_github_shape(gh.Issue, closed).closed_by is not None
    assert_github_shape(gh.Issue, (await client.get("/repos/acme/web/issues/1")).json())
    for item in (await client.get("/repos/acme/web/issues?state=all")).json():
        assert_github_shape(gh.Issue, item)
    found = (await client.get("/search/issues", params={"q": "repo:acme/web IOC"})).json()
    result = assert_github_shape(gh.SearchIssuesGetResponse200, found)
    assert result.total_count == 1 and result.items[0].score == 1.0


async def test_rate_limit_and_errors(client, make_client):
    overview = assert_github_shape(gh.RateLimitOverview, (await client.get("/rate_limit")).json())
    assert overview.resources.core.limit == 5000 and overview.resources.core.remaining == 5000
    assert_github_shape(gh.BasicError, (await client.get("/repos/acme/ghost")).json())
    assert_github_shape(gh.ValidationError, (await client.get("/search/issues")).json())
    async with make_client(headers={"Authorization": "token bad-token"}) as bad:
        assert_github_shape(gh.BasicError, (await bad.get("/repos/acme/web")).json())
    async with make_client(config=SimConfig(core_limit=1, secondary_points_per_minute=2)) as c:
        await c.get("/repos/acme/web")
        assert_github_shape(gh.BasicError, (await c.get("/repos/acme/web")).json())     # primary
        await c.get("/rate_limit")
        tripped = await c.get("/rate_limit")
        assert tripped.status_code in (403, 429)
        assert_github_shape(gh.BasicError, tripped.json())                                # secondary


async def test_versions_differ_only_by_the_removed_fields(make_client):
    async with make_client() as old, make_client(headers={"Authorization": "token t",
                                                          "X-GitHub-Api-Version": VERSION}) as new:
        await old.post("/repos/acme/web/issues", json={"title": "x"})
        await new.post("/repos/acme/web/issues", json={"title": "y"})
        for path, key in [("/rate_limit", "rate"), ("/repos/acme/web", "has_downloads"),
                          ("/repos/acme/web/issues/1", "assignee")]:
            legacy, current = (await old.get(path)), (await new.get(path))
            assert key in legacy.json() and key not in current.json()
            assert legacy.headers["x-github-api-version-selected"] == "2022-11-28"
            assert current.headers["x-github-api-version-selected"] == VERSION
        bad = await old.get("/repos/acme/web", headers={"X-GitHub-Api-Version": "2019-01-01"})
        assert bad.status_code == 400 and "X-GitHub-Api-Version" in bad.json()["message"]


async def test_generated_org_serves_github_shapes(make_client):
    from engine.sim.app import build_org

    org = build_org(SimConfig(repos=12, seed=3))
    async with make_client(org=org, headers={"Authorization": "token t", "X-GitHub-Api-Version": VERSION}) as c:
        listing = (await c.get("/orgs/acme/repos", params={"per_page": 100})).json()
        assert len(listing) == len(org.repos)
        for item in listing:
            assert_github_shape(gh.MinimalRepository, item)
            full = (await c.get(f"/repos/{item['full_name']}")).json()
            assert_github_shape(gh.FullRepository, full)
            tree = await c.get(f"/repos/{item['full_name']}/git/trees/{full['default_branch']}?recursive=1")
            if tree.status_code == 409:      # an empty repository
                continue
            parsed = assert_github_shape(gh.GitTree, tree.json())
            first_blob = next(e for e in parsed.tree if e.type == "blob")
            blob = (await c.get(f"/repos/{item['full_name']}/git/blobs/{first_blob.sha}")).json()
            assert_github_shape(gh.Blob, blob)
