"""POST /graphql: aliases, pagination, GitHub's error shapes, cost and limits."""

from __future__ import annotations

from engine.sim.config import SimConfig
from engine.sim.data import SimOrg


async def gql(c, query: str, variables: dict | None = None):
    return await c.post("/graphql", json={"query": query, "variables": variables or {}})


async def test_aliases_fetch_many_files_across_repos_in_one_query(make_client, kit):
    org = SimOrg(login="acme", id=1, repos=[
        kit.make_repo("acme", 10 + i, f"svc{i}", {f"deps/lock{j}.txt": f"svc{i} lock {j}\n".encode()
                                                   for j in range(4)})
        for i in range(5)])
    parts = []
    for i in range(5):
        files = " ".join(f'f{j}: object(expression: "main:deps/lock{j}.txt") {{ ... on Blob {{ oid text byteSize }} }}'
                         for j in range(4))
        parts.append(f'r{i}: repository(owner: "acme", name: "svc{i}") {{ {files} }}')
    query = "query { rateLimit { cost remaining } " + " ".join(parts) + " }"
    async with make_client(org=org) as c:
        r = await gql(c, query)
        assert r.status_code == 200 and "errors" not in r.json()
        data = r.json()["data"]
        for i in range(5):
            for j in range(4):
                f = data[f"r{i}"][f"f{j}"]
                expected = org.repos[i].files[f"deps/lock{j}.txt"]
                assert f["text"] == expected.content.decode() and f["oid"] == expected.sha
                assert f["byteSize"] == expected.size
        assert data["rateLimit"] == {"cost": 1, "remaining": 4999}
        assert r.headers["x-ratelimit-resource"] == "graphql" and r.headers["x-ratelimit-used"] == "1"
        stats = (await c.get("/_sim/stats")).json()
        assert stats["graphql_queries"] == 1 and len(stats["blob_fetches"]) == 20
        assert stats["requests"] == {"POST /graphql": 1}


async def test_organization_repositories_paginate_by_cursor(make_client, kit):
    query = """query($login: String!, $after: String) {
      organization(login: $login) {
        repositories(first: 100, after: $after) {
          totalCount
          nodes { name nameWithOwner isArchived isFork isPrivate defaultBranchRef { name } }
          pageInfo { hasNextPage endCursor }
        }
      }
    }"""
    async with make_client(org=kit.wide_org(250)) as c:
        names: list[str] = []
        after = None
        while True:
            r = await gql(c, query, {"login": "acme", "after": after})
            conn = r.json()["data"]["organization"]["repositories"]
            assert conn["totalCount"] == 250
            names += [n["nameWithOwner"] for n in conn["nodes"]]
            assert all(n["defaultBranchRef"] == {"name": "main"} for n in conn["nodes"])
            if not conn["pageInfo"]["hasNextPage"]:
                break
            after = conn["pageInfo"]["endCursor"]
        assert len(names) == 250 and len(set(names)) == 250
        ordered = await gql(c, '{ organization(login: "acme") { repositories(first: 3, orderBy: '
                               '{field: NAME, direction: DESC}) { nodes { name } } } }')
        assert [n["name"] for n in ordered.json()["data"]["organization"]["repositories"]["nodes"]] == [
            "repo-00249", "repo-00248", "repo-00247"]


async def test_trees_oids_binary_and_default_branch(client, kit):
    web = kit.small_org().repo("web")
    readme_sha = web.files["README.md"].sha
    r = await gql(client, """{ repository(owner: "acme", name: "web") {
        defaultBranchRef { name target { oid ... on Commit { tree { oid } } } }
        root: object(expression: "HEAD:") { __typename ... on Tree { oid entries { name path type oid mode } } }
        sub: object(expression: "main:services/api") { ... on Tree { entries { path type } } }
        png: object(expression: "main:logo.png") { ... on Blob { isBinary text } }
        byOid: object(oid: "README_SHA") { __typename ... on Blob { text } }
        missing: object(expression: "main:nope.txt") { oid }
        otherRef: object(expression: "dev:README.md") { oid } } }""".replace("README_SHA", readme_sha))
    body = r.json()
    assert "errors" not in body
    repo = body["data"]["repository"]
    assert repo["defaultBranchRef"]["name"] == "main"
    assert repo["defaultBranchRef"]["target"]["oid"] == web.commit_sha
    assert repo["defaultBranchRef"]["target"]["tree"]["oid"] == repo["root"]["oid"] == web.tree_sha()
    assert [(e["name"], e["type"]) for e in repo["root"]["entries"]] == [
        ("README.md", "blob"), ("logo.png", "blob"), ("package-lock.json", "blob"), ("services", "tree")]
    assert repo["root"]["entries"][3]["mode"] == 0o40000
    assert repo["sub"]["entries"] == [{"path": "services/api/package-lock.json", "type": "blob"},
                                      {"path": "services/api/src", "type": "tree"}]
    assert repo["png"] == {"isBinary": True, "text": None}
    assert repo["byOid"] == {"__typename": "Blob", "text": kit.README.decode()}
    assert repo["missing"] is None and repo["otherRef"] is None


async def test_errors_have_githubs_shape(client):
    r = await gql(client, '{ repository(owner: "acme", name: "ghost") { name } '
                          'org: organization(login: "nobody") { login } }')
    body = r.json()
    assert r.status_code == 200 and body["data"] == {"repository": None, "org": None}
    by_path = {tuple(e["path"]): e for e in body["errors"]}
    assert by_path[("repository",)]["type"] == "NOT_FOUND"
    assert by_path[("repository",)]["message"] == "Could not resolve to a Repository with the name 'acme/ghost'."
    assert by_path[("org",)]["type"] == "NOT_FOUND" and by_path[("org",)]["locations"]

    invalid = await gql(client, '{ repository(owner: "acme", name: "web") { nmae } }')
    assert invalid.status_code == 200 and "data" not in invalid.json()
    assert "nmae" in invalid.json()["errors"][0]["message"]
    syntax = await gql(client, "{ repository(owner: ")
    assert "data" not in syntax.json() and syntax.json()["errors"][0]["locations"]
    wrong_type = await gql(client, '{ repository(owner: 1, name: "web") { name } }')
    assert "errors" in wrong_type.json()
    no_query = await client.post("/graphql", json={"variables": {}})
    assert no_query.json()["errors"][0]["message"].startswith("A query attribute must be specified")
    not_json = await client.post("/graphql", content=b"{")
    assert not_json.status_code == 400 and not_json.json()["message"] == "Problems parsing JSON"


async def test_pagination_boundaries_are_enforced(client):
    missing = await gql(client, '{ organization(login: "acme") { repositories { totalCount } } }')
    assert missing.json()["errors"][0]["type"] == "MISSING_PAGINATION_BOUNDARIES"
    too_many = await gql(client, '{ organization(login: "acme") { repositories(first: 101) { totalCount } } }')
    err = too_many.json()["errors"][0]
    assert err["type"] == "EXCESSIVE_PAGINATION" and "101" in err["message"]
    assert "data" not in too_many.json()


async def test_cost_follows_githubs_formula(client):
    aliases = " ".join(f'o{i}: organization(login: "acme") {{ repositories(first: 100) {{ totalCount }} }}'
                       for i in range(150))
    r = await gql(client, "{ " + aliases + " }")
    assert "errors" not in r.json()
    assert r.headers["x-ratelimit-used"] == "2"        # 150 connection requests / 100, rounded
    small = await gql(client, '{ rateLimit { cost limit used remaining nodeCount resetAt } }')
    info = small.json()["data"]["rateLimit"]
    assert info["cost"] == 1 and info["used"] == 3 and info["remaining"] == 4997 and info["limit"] == 5000
    assert info["resetAt"].endswith("Z")


async def test_graphql_bucket_exhaustion_is_a_rate_limit_error(make_client):
    async with make_client(config=SimConfig(graphql_limit=2)) as c:
        for _ in range(2):
            assert "errors" not in (await gql(c, "{ rateLimit { remaining } }")).json()
        limited = await gql(c, "{ rateLimit { remaining } }")
        assert limited.status_code == 200
        assert limited.json()["errors"][0]["type"] == "RATE_LIMITED"
        assert limited.json()["errors"][0]["message"].startswith("API rate limit already exceeded for user ID")
        assert limited.headers["x-ratelimit-remaining"] == "0"
        stats = (await c.get("/_sim/stats")).json()
        assert stats["violations"] == 1 and stats["points_used"]["graphql"] == 2
        core = await c.get("/repos/acme/web")
        assert core.status_code == 200
    async with make_client(headers={}) as anonymous:
        r = await gql(anonymous, "{ rateLimit { remaining } }")
        assert r.status_code == 401


async def test_blob_text_truncation_and_oversized_responses(make_client, kit):
    org = SimOrg(login="acme", id=1, repos=[kit.make_repo("acme", 3, "big", {"big.txt": b"0123456789" * 100})])
    query = '{ repository(owner: "acme", name: "big") { object(expression: "main:big.txt") ' \
            '{ ... on Blob { text isTruncated byteSize } } } }'
    async with make_client(config=SimConfig(graphql_blob_text_limit=25), org=org) as c:
        blob = (await gql(c, query)).json()["data"]["repository"]["object"]
        assert blob == {"text": "0123456789012345678901234", "isTruncated": True, "byteSize": 1000}
    async with make_client(config=SimConfig(graphql_response_limit_bytes=500), org=org) as c:
        r = await gql(c, query)
        assert r.status_code == 502
        assert r.json()["errors"][0]["message"].startswith("Something went wrong while executing your query")
        assert r.headers["x-ratelimit-used"] == "1"     # GitHub charges queries that time out


async def test_a_repeated_query_text_answers_from_its_own_variables(make_client, kit):
    """Batching clients resend one query text with new variables (the simulator keeps the
    parsed text): each answer must still follow its variables, and an invalid text must
    fail every time, not only the first."""
    org = SimOrg(login="acme", id=1, repos=[kit.make_repo("acme", 10 + i, f"svc{i}", {"a.txt": f"svc{i}\n".encode()})
                                           for i in range(3)])
    query = "query($n: String!) { repository(owner: \"acme\", name: $n) { object(expression: \"HEAD:a.txt\") " \
            "{ ... on Blob { text } } } }"
    async with make_client(org=org) as c:
        for i in (0, 2, 1):
            r = await gql(c, query, {"n": f"svc{i}"})
            assert r.json()["data"]["repository"]["object"]["text"] == f"svc{i}\n"
        for _ in range(2):
            r = await gql(c, "query { repository(owner: \"acme\", name: \"svc0\") { nope } }")
            assert "data" not in r.json() and "nope" in r.json()["errors"][0]["message"]
