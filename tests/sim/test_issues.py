"""Issue tracking in the simulator: shapes, sub-issue rules, content-creation limits, lost creates."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from githubkit_schemas.latest import models as gh
from pydantic import BaseModel

from engine.sim.config import SimConfig
from engine.sim.faults import SimulatedConnectionReset

HEADERS = {"Authorization": "token issues", "X-GitHub-Api-Version": "2026-03-10"}


def shaped(model: type[BaseModel], data: Any) -> BaseModel:
    """Parse with githubkit's model and reject keys GitHub's description does not know."""
    obj = model.model_validate(data)
    known = {(f.alias or name) for name, f in type(obj).model_fields.items()}
    assert not set(data) - known, sorted(set(data) - known)
    return obj


async def _new(c: httpx.AsyncClient, title: str, **extra: Any) -> dict:
    r = await c.post("/repos/acme/web/issues", json={"title": title, **extra})
    assert r.status_code == 201, r.text
    return r.json()


async def test_labels_milestones_and_issue_shapes(make_client):
    async with make_client(headers=HEADERS) as c:
        label = await c.post("/repos/acme/web/labels", json={"name": "epic", "color": "#a2eeef"})
        assert label.status_code == 201
        shaped(gh.Label, label.json())
        again = await c.post("/repos/acme/web/labels", json={"name": "Epic"})
        assert again.status_code == 422 and again.json()["errors"][0]["code"] == "already_exists"
        shaped(gh.ValidationError, again.json())
        milestone = await c.post("/repos/acme/web/milestones", json={"title": "v1"})
        assert milestone.status_code == 201
        shaped(gh.Milestone, milestone.json())
        issue = shaped(gh.Issue, await _new(c, "t", labels=["epic"], milestone=1))
        assert issue.milestone is not None and issue.milestone.title == "v1"
        bad = await c.post("/repos/acme/web/issues", json={"title": "t", "milestone": 9})
        assert bad.status_code == 422
        listed = (await c.get("/repos/acme/web/labels")).json()
        assert [x["name"] for x in listed] == ["epic"]
        assert [m["open_issues"] for m in (await c.get("/repos/acme/web/milestones")).json()] == [1]
        by_label = (await c.get("/repos/acme/web/issues", params={"labels": "epic"})).json()
        assert [i["number"] for i in by_label] == [1]


UNLIMITED = SimConfig(content_create_per_minute=10_000, content_create_per_hour=10_000,
                      secondary_points_per_minute=100_000)


async def test_sub_issues_take_the_child_id_and_keep_githubs_limits(make_client):
    async with make_client(headers=HEADERS, config=UNLIMITED) as c:
        parent = await _new(c, "parent")
        child = await _new(c, "child")
        by_number = await c.post("/repos/acme/web/issues/1/sub_issues", json={"sub_issue_id": child["number"]})
        assert by_number.status_code == 422           # a number is not an issue id
        linked = await c.post("/repos/acme/web/issues/1/sub_issues", json={"sub_issue_id": child["id"]})
        assert linked.status_code == 201
        assert shaped(gh.Issue, linked.json()).sub_issues_summary.total == 1
        assert (await c.post("/repos/acme/web/issues/1/sub_issues",
                             json={"sub_issue_id": child["id"]})).status_code == 422     # duplicate
        assert (await c.get("/repos/acme/web/issues/2/parent")).json()["number"] == parent["number"]
        kids = (await c.get("/repos/acme/web/issues/1/sub_issues")).json()
        assert [k["number"] for k in kids] == [2]
        # 100 per parent, closed ones included
        for i in range(99):
            extra = await _new(c, f"kid {i}")
            await c.patch(f"/repos/acme/web/issues/{extra['number']}", json={"state": "closed"})
            assert (await c.post("/repos/acme/web/issues/1/sub_issues",
                                 json={"sub_issue_id": extra["id"]})).status_code == 201
        one_more = await _new(c, "one too many")
        full = await c.post("/repos/acme/web/issues/1/sub_issues", json={"sub_issue_id": one_more["id"]})
        assert full.status_code == 422 and "100" in full.json()["errors"][0]["message"]


async def test_nesting_stops_at_eight_levels(make_client):
    async with make_client(headers=HEADERS, config=UNLIMITED) as c:
        chain = [await _new(c, f"level {i}") for i in range(10)]
        results = []
        for upper, lower in zip(chain, chain[1:], strict=False):
            r = await c.post(f"/repos/acme/web/issues/{upper['number']}/sub_issues",
                             json={"sub_issue_id": lower["id"]})
            results.append(r.status_code)
        assert results[:8] == [201] * 8 and results[8] == 422


@pytest.mark.parametrize("retry_after", ["always", "never"])
async def test_content_creation_limit_and_violations(make_client, clock, retry_after):
    config = SimConfig(content_create_per_minute=3, content_create_per_hour=5, secondary_retry_after=retry_after)
    async with make_client(headers=HEADERS, config=config) as c:
        for i in range(3):
            await _new(c, f"ok {i}")
        refused = await c.post("/repos/acme/web/issues", json={"title": "fourth"})
        assert refused.status_code in (403, 429)
        assert "temporarily blocked from content creation" in refused.json()["message"]
        assert ("retry-after" in refused.headers) == (retry_after == "always")
        stats = (await c.get("/_sim/stats")).json()
        assert stats["violations_by_kind"]["content_creation"] == 0       # tripping is not a violation
        await c.post("/repos/acme/web/issues", json={"title": "sent while blocked"})
        stats = (await c.get("/_sim/stats")).json()
        assert stats["violations_by_kind"]["content_creation"] == 1
        clock.advance(61 + 60)                 # past the block and the minute: the hour still counts
        await _new(c, "ok 3")
        await _new(c, "ok 4")
        hourly = await c.post("/repos/acme/web/issues", json={"title": "sixth"})
        assert hourly.status_code in (403, 429)
        assert (await c.get("/_sim/stats")).json()["secondary_reasons"]["content_hour"] == 1


async def test_a_lost_create_happened_but_its_answer_never_arrives(make_client):
    async with make_client(headers=HEADERS) as c:
        await c.post("/_sim/issue_faults", json={"every": 2, "limit": 2, "mode": "reset"})
        await _new(c, "first")
        with pytest.raises((SimulatedConnectionReset, httpx.TransportError)):
            await c.post("/repos/acme/web/issues", json={"title": "second"})
        assert (await c.get("/repos/acme/web/issues/2")).json()["title"] == "second"
        await c.post("/_sim/issue_faults", json={"every": 1, "limit": 1, "mode": "502"})
        lost = await c.post("/repos/acme/web/issues", json={"title": "third <!-- batchdeck:id=x -->"})
        assert lost.status_code == 502
        found = (await c.get("/search/issues", params={"q": 'repo:acme/web "batchdeck:id=x"'})).json()
        assert [i["number"] for i in found["items"]] == [3]
        seen = (await c.get("/_sim/issue_faults")).json()
        assert seen["responses_dropped"] == 1 and seen["issues"] == 3
