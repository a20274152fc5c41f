"""Issue tracking in the simulator: labels, milestones, sub-issues, and the create fault.

Why it is built this way:

* Issues themselves stay in :class:`engine.sim.rest.IssueStore` (one owner);
  what planning tools add around them — labels, milestones, the sub-issue
  tree, an issue's milestone — lives in :class:`Tracker`, kept on the
  simulator state next to it, so ``rest.py`` keeps its shapes and this module
  only decorates them (``milestone``, ``sub_issues_summary``).
* Every route is declared here as data (:data:`ROUTES`) and turned into the
  pipeline's ``Endpoint`` by ``engine.sim.app``: auth, limits (every POST here
  is *content creation*, charged to GitHub's 80/min and 500/h secondary
  limits), faults and headers are applied there, the same as for every
  other endpoint.
* Sub-issues follow GitHub's documented rules: the request names the child's
  numeric ``id`` (not its number), a parent holds at most 100 sub-issues
  (closed ones included), nesting is at most 8 levels, a child has one parent
  (``replace_parent`` moves it). Breaking a rule is a 422.
* The *lost create* fault (``POST /_sim/issue_faults``) performs the create
  and then drops the answer — a reset connection or a 502 — the case that
  makes naive retries duplicate issues. It is deterministic: every ``every``-th
  create, at most ``limit`` times, so tests assert counts, not chances.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from engine.sim import rest
from engine.sim.faults import ResetResponse
from engine.sim.rest import ApiError, SimIssue, base_url, iso, json_response, node_id, sim, user_json

MAX_SUB_ISSUES = 100
MAX_NESTING = 8
DOC = rest.DOCS
SUB_DOC = f"{DOC}/issues/sub-issues#add-sub-issue"
LABEL_DOC = f"{DOC}/issues/labels#create-a-label"
MILESTONE_DOC = f"{DOC}/issues/milestones#create-a-milestone"


class _LostResponse(ResetResponse):
    """The create happened (201 on the server's side); the client never reads the answer."""

    def __init__(self) -> None:
        super().__init__(status_code=201)


@dataclass
class LostCreates:
    """Drop the answer of every ``every``-th issue create, ``limit`` times at most."""

    every: int = 0
    limit: int = 0
    mode: str = "reset"          # "reset" (connection dropped) | "502" (a 5xx after the server acted)
    seen: int = 0
    dropped: int = 0

    def drop_now(self) -> bool:
        self.seen += 1
        if self.every <= 0 or self.dropped >= self.limit or self.seen % self.every:
            return False
        self.dropped += 1
        return True


@dataclass
class Tracker:
    labels: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)      # repo → lower name → label
    milestones: dict[str, list[dict[str, Any]]] = field(default_factory=dict)       # repo → milestones
    milestone_of: dict[int, int] = field(default_factory=dict)                      # issue id → milestone number
    parent_of: dict[int, int] = field(default_factory=dict)                         # child id → parent id
    children: dict[int, list[int]] = field(default_factory=dict)                    # parent id → child ids
    lost: LostCreates = field(default_factory=LostCreates)


def tracker(request: Request) -> Tracker:
    state = sim(request)
    found = getattr(state, "issue_tracker", None)
    if found is None:
        found = state.issue_tracker = Tracker()
    return found


def _by_id(request: Request, repo: Any, issue_id: int) -> SimIssue | None:
    return next((i for i in sim(request).issues.of(repo) if i.id == issue_id), None)


def _issue(request: Request, doc: str) -> tuple[Any, SimIssue]:
    repo = rest._repo(request, doc)
    issue = sim(request).issues.get(repo, rest._int_path(request, "n", doc))
    if issue is None:
        raise ApiError(404, "Not Found", doc)
    return repo, issue


def _failed(doc: str, resource: str, field_: str, code: str, message: str | None = None) -> ApiError:
    error: dict[str, Any] = {"resource": resource, "field": field_, "code": code}
    if message:
        error = {"resource": resource, "code": "custom", "field": field_, "message": message}
    return ApiError(422, "Validation Failed", doc, [error])


# ---------------------------------------------------------------------------
# shapes

def milestone_json(base: str, full_name: str, m: dict[str, Any], request: Request) -> dict[str, Any]:
    ident = request.state.identity
    url = f"{base}/repos/{full_name}/milestones/{m['number']}"
    issues = [i for i in sim(request).issues.all() if tracker(request).milestone_of.get(i.id) == m["number"]
              and i.full_name == full_name]
    return {"url": url, "html_url": f"{base}/{full_name}/milestone/{m['number']}", "labels_url": f"{url}/labels",
            "id": m["id"], "node_id": node_id("Milestone", m["id"]), "number": m["number"], "state": m["state"],
            "title": m["title"], "description": m["description"], "creator": user_json(base, ident.login,
                                                                                       ident.user_id or 0),
            "open_issues": sum(1 for i in issues if i.state == "open"),
            "closed_issues": sum(1 for i in issues if i.state == "closed"),
            "created_at": m["created_at"], "updated_at": m["created_at"], "closed_at": None, "due_on": m["due_on"]}


def label_json(base: str, full_name: str, label: dict[str, Any]) -> dict[str, Any]:
    out = rest.label_json(base, full_name, label["name"])
    out.update(color=label["color"], description=label["description"], archived_at=None, archived_by=None)
    return out


def decorate(request: Request, issue: SimIssue, out: dict[str, Any]) -> dict[str, Any]:
    """Add what this module owns to an issue shape built by ``rest.issue_json``."""
    t = tracker(request)
    number = t.milestone_of.get(issue.id)
    if number is not None:
        m = next(m for m in t.milestones.get(issue.full_name.lower(), []) if m["number"] == number)
        out["milestone"] = milestone_json(base_url(request), issue.full_name, m, request)
    kids = t.children.get(issue.id, [])
    if kids:
        done = sum(1 for i in sim(request).issues.all() if i.id in set(kids) and i.state == "closed")
        out["sub_issues_summary"] = {"total": len(kids), "completed": done,
                                     "percent_completed": int(100 * done / len(kids))}
    return out


def _issue_response(request: Request, issue: SimIssue, status: int = 200) -> Response:
    out = decorate(request, issue, rest.issue_json(base_url(request), issue, legacy=rest.legacy(request)))
    return json_response(out, status=status, headers={"location": out["url"]} if status == 201 else None)


# ---------------------------------------------------------------------------
# issues: create (with milestone and the lost-create fault), update, list (since, milestone)

async def _milestone_field(request: Request, repo: Any, data: dict[str, Any], doc: str) -> int | None:
    if data.get("milestone") is None:
        return None
    number = data["milestone"]
    if isinstance(number, str) and number.isdigit():
        number = int(number)
    known = {m["number"] for m in tracker(request).milestones.get(repo.full_name.lower(), [])}
    if not isinstance(number, int) or number not in known:
        raise _failed(doc, "Issue", "milestone", "invalid")
    return number


async def create_issue(request: Request) -> Response:
    doc = f"{DOC}/issues/issues#create-an-issue"
    repo = rest._repo(request, doc)
    data = await rest._json_body(request, doc)
    milestone = await _milestone_field(request, repo, data, doc)
    created = await rest.create_issue(request)       # validates title/body/labels, creates, 201
    issue = sim(request).issues.of(repo)[-1]
    t = tracker(request)
    if milestone is not None:
        t.milestone_of[issue.id] = milestone
    for name in issue.labels:                        # GitHub creates labels an issue names
        t.labels.setdefault(repo.full_name.lower(), {}).setdefault(
            name.lower(), {"name": name, "color": "ededed", "description": None})
    if t.lost.drop_now():
        if t.lost.mode == "502":
            return json_response({"message": "Server Error"}, status=502)
        return _LostResponse()
    del created
    return _issue_response(request, issue, 201)


async def update_issue(request: Request) -> Response:
    doc = f"{DOC}/issues/issues#update-an-issue"
    repo, issue = _issue(request, doc)
    data = await rest._json_body(request, doc)
    milestone = await _milestone_field(request, repo, data, doc) if "milestone" in data else None
    await rest.update_issue(request)
    if "milestone" in data:
        t = tracker(request)
        if milestone is None:
            t.milestone_of.pop(issue.id, None)
        else:
            t.milestone_of[issue.id] = milestone
    return _issue_response(request, issue)


async def get_issue(request: Request) -> Response:
    _, issue = _issue(request, f"{DOC}/issues/issues#get-an-issue")
    return _issue_response(request, issue)


async def list_issues(request: Request) -> Response:
    repo = rest._repo(request, f"{DOC}/issues/issues#list-repository-issues")
    issues = rest._issue_filter(request, sim(request).issues.of(repo))
    if since := request.query_params.get("since"):
        issues = [i for i in issues if i.updated_at >= since.replace("+00:00", "Z")]
    if (wanted := request.query_params.get("milestone")) not in (None, "*"):
        t = tracker(request)
        issues = [i for i in issues if (t.milestone_of.get(i.id) is None) == (wanted == "none")
                  and (wanted == "none" or str(t.milestone_of.get(i.id)) == wanted)]
    page, headers = rest.paginate(request, issues)
    base = base_url(request)
    return json_response([decorate(request, i, rest.issue_json(base, i, legacy=rest.legacy(request)))
                          for i in page], headers=headers)


# ---------------------------------------------------------------------------
# labels and milestones

async def list_labels(request: Request) -> Response:
    repo = rest._repo(request, f"{DOC}/issues/labels#list-labels-for-a-repository")
    labels = sorted(tracker(request).labels.get(repo.full_name.lower(), {}).values(), key=lambda x: x["name"])
    page, headers = rest.paginate(request, labels)
    return json_response([label_json(base_url(request), repo.full_name, x) for x in page], headers=headers)


async def create_label(request: Request) -> Response:
    repo = rest._repo(request, LABEL_DOC)
    data = await rest._json_body(request, LABEL_DOC)
    rest._writable(repo, LABEL_DOC)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _failed(LABEL_DOC, "Label", "name", "missing_field")
    color = str(data.get("color") or hashlib.md5(name.encode()).hexdigest()[:6]).lstrip("#")
    if len(color) != 6 or any(c not in "0123456789abcdefABCDEF" for c in color):
        raise _failed(LABEL_DOC, "Label", "color", "invalid")
    labels = tracker(request).labels.setdefault(repo.full_name.lower(), {})
    if name.lower() in labels:
        raise _failed(LABEL_DOC, "Label", "name", "already_exists")
    labels[name.lower()] = {"name": name, "color": color.lower(), "description": data.get("description")}
    out = label_json(base_url(request), repo.full_name, labels[name.lower()])
    return json_response(out, status=201, headers={"location": out["url"]})


async def list_milestones(request: Request) -> Response:
    repo = rest._repo(request, f"{DOC}/issues/milestones#list-milestones")
    state = request.query_params.get("state", "open")
    found = [m for m in tracker(request).milestones.get(repo.full_name.lower(), [])
             if state == "all" or m["state"] == state]
    page, headers = rest.paginate(request, found)
    return json_response([milestone_json(base_url(request), repo.full_name, m, request) for m in page],
                         headers=headers)


async def create_milestone(request: Request) -> Response:
    repo = rest._repo(request, MILESTONE_DOC)
    data = await rest._json_body(request, MILESTONE_DOC)
    rest._writable(repo, MILESTONE_DOC)
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise _failed(MILESTONE_DOC, "Milestone", "title", "missing_field")
    if data.get("state", "open") not in ("open", "closed"):
        raise _failed(MILESTONE_DOC, "Milestone", "state", "invalid")
    milestones = tracker(request).milestones.setdefault(repo.full_name.lower(), [])
    if any(m["title"] == title for m in milestones):
        raise _failed(MILESTONE_DOC, "Milestone", "title", "already_exists")
    number = len(milestones) + 1
    mid = int.from_bytes(hashlib.sha1(f"{repo.full_name}:m{number}".encode()).digest()[:4])
    m = {"id": mid, "number": number, "title": title, "state": data.get("state", "open"),
         "description": data.get("description"), "due_on": data.get("due_on"),
         "created_at": iso(sim(request).clock())}
    milestones.append(m)
    out = milestone_json(base_url(request), repo.full_name, m, request)
    return json_response(out, status=201, headers={"location": out["url"]})


# ---------------------------------------------------------------------------
# sub-issues

def _depth_below(t: Tracker, issue_id: int) -> int:
    """Levels of sub-issues under an issue (0: none)."""
    kids = t.children.get(issue_id, [])
    return 1 + max(_depth_below(t, k) for k in kids) if kids else 0


def _ancestors(t: Tracker, issue_id: int) -> list[int]:
    out = []
    while issue_id in t.parent_of:
        issue_id = t.parent_of[issue_id]
        out.append(issue_id)
    return out


async def add_sub_issue(request: Request) -> Response:
    repo, parent = _issue(request, SUB_DOC)
    data = await rest._json_body(request, SUB_DOC)
    rest._writable(repo, SUB_DOC)
    child_id = data.get("sub_issue_id")
    if not isinstance(child_id, int) or isinstance(child_id, bool):
        raise rest._invalid(SUB_DOC, "For 'properties/sub_issue_id', the value is not an integer.")
    child = _by_id(request, repo, child_id)
    if child is None:
        raise _failed(SUB_DOC, "Issue", "sub_issue_id", "invalid", "The provided sub-issue does not exist.")
    t = tracker(request)
    kids = t.children.setdefault(parent.id, [])
    if child.id == parent.id or child.id in _ancestors(t, parent.id):
        raise _failed(SUB_DOC, "Issue", "sub_issue_id", "invalid", "An issue cannot be its own ancestor.")
    if child.id in kids:
        raise _failed(SUB_DOC, "Issue", "sub_issue_id", "invalid", "Issue may not contain duplicate sub-issues")
    if child.id in t.parent_of and not data.get("replace_parent"):
        raise _failed(SUB_DOC, "Issue", "sub_issue_id", "invalid", "Sub issue may only have one parent")
    if len(kids) >= MAX_SUB_ISSUES:
        raise _failed(SUB_DOC, "Issue", "sub_issue_id", "invalid",
                      f"Parent cannot have more than {MAX_SUB_ISSUES} sub-issues")
    if len(_ancestors(t, parent.id)) + 1 + _depth_below(t, child.id) > MAX_NESTING:
        raise _failed(SUB_DOC, "Issue", "sub_issue_id", "invalid",
                      f"Parent cannot have more than {MAX_NESTING} levels of sub-issues")
    old = t.parent_of.get(child.id)
    if old is not None:
        t.children[old].remove(child.id)
    kids.append(child.id)
    t.parent_of[child.id] = parent.id
    return _issue_response(request, parent, 201)


async def list_sub_issues(request: Request) -> Response:
    repo, parent = _issue(request, f"{DOC}/issues/sub-issues#list-sub-issues")
    ids = tracker(request).children.get(parent.id, [])
    by_id = {i.id: i for i in sim(request).issues.of(repo)}
    page, headers = rest.paginate(request, [by_id[i] for i in ids if i in by_id])
    base = base_url(request)
    return json_response([decorate(request, i, rest.issue_json(base, i, legacy=rest.legacy(request)))
                          for i in page], headers=headers)


async def get_parent(request: Request) -> Response:
    repo, child = _issue(request, f"{DOC}/issues/sub-issues#get-parent-issue")
    parent_id = tracker(request).parent_of.get(child.id)
    parent = _by_id(request, repo, parent_id) if parent_id is not None else None
    if parent is None:
        raise ApiError(404, "Not Found", f"{DOC}/issues/sub-issues#get-parent-issue")
    return _issue_response(request, parent)


# ---------------------------------------------------------------------------
# the side door: the lost-create fault and what this module saw

async def sim_issue_faults(request: Request) -> Response:
    t = tracker(request)
    if request.method == "POST":
        try:
            patch = await request.json()
            every, limit = int(patch.get("every", t.lost.every)), int(patch.get("limit", t.lost.limit))
            mode = str(patch.get("mode", t.lost.mode))
        except (ValueError, TypeError, AttributeError):
            return json_response({"message": "Problems parsing JSON"}, status=400)
        if mode not in ("reset", "502") or every < 0 or limit < 0:
            return json_response({"message": "mode is reset or 502; every and limit are >= 0"}, status=422)
        t.lost = LostCreates(every=every, limit=limit, mode=mode)
    issues = sim(request).issues.all()
    return json_response({"every": t.lost.every, "limit": t.lost.limit, "mode": t.lost.mode,
                          "creates_seen": t.lost.seen, "responses_dropped": t.lost.dropped,
                          "issues": len(issues), "sub_issue_links": len(t.parent_of)})


#: (method, path, handler, creates_content) — turned into pipeline endpoints by engine.sim.app,
#: ahead of rest.py's issue routes (these decorate them with milestones and sub-issues).
ROUTES: list[tuple[str, str, Any, bool]] = [
    ("GET", "/repos/{o}/{r}/issues", list_issues, False),
    ("POST", "/repos/{o}/{r}/issues", create_issue, True),
    ("GET", "/repos/{o}/{r}/issues/{n}", get_issue, False),
    ("PATCH", "/repos/{o}/{r}/issues/{n}", update_issue, False),
    ("GET", "/repos/{o}/{r}/labels", list_labels, False),
    ("POST", "/repos/{o}/{r}/labels", create_label, True),
    ("GET", "/repos/{o}/{r}/milestones", list_milestones, False),
    ("POST", "/repos/{o}/{r}/milestones", create_milestone, True),
    ("GET", "/repos/{o}/{r}/issues/{n}/sub_issues", list_sub_issues, False),
    ("POST", "/repos/{o}/{r}/issues/{n}/sub_issues", add_sub_issue, True),
    ("GET", "/repos/{o}/{r}/issues/{n}/parent", get_parent, False),
]
