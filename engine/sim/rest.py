"""The REST endpoints: repositories, git trees and blobs, contents, issues, search.

Why it is built this way:

* Every JSON object is built with the keys GitHub's OpenAPI description gives
  that object (owner objects, the ~45 ``*_url`` templates, ``node_id``,
  ``permissions``...) and no others: ``tests/sim/test_fidelity.py`` parses each
  shape with githubkit's generated models and rejects unknown keys, so a shape
  github.com would not send fails a test.
* URLs in bodies and ``Link`` headers point at the simulator's own base URL, so
  a client can follow them; nothing in a response leads to github.com.
* Handlers only compute bodies. Rate limits, ETags/304s, faults and the
  ``x-ratelimit-*`` headers are applied around them by ``engine.sim.app``;
  a handler that wants a 4xx raises :class:`ApiError`, and one that served a
  blob names its sha in ``request.state.blob_sha`` so the fetch is counted only
  if the client actually received it (not on a 304).
* ``X-GitHub-Api-Version`` is honoured: 2022-11-28 (the default, as on
  GitHub) still sends the fields 2026-03-10 removed (``rate`` in
  ``/rate_limit``, ``has_downloads`` on repositories, ``assignee`` on issues);
  2026-03-10 omits them. Additive fields (``search_type``) are in both.
* Issues are the simulator's only mutable data: :class:`IssueStore` keeps them
  in memory next to the generated (immutable) org.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from engine.sim.data import SimFile, SimOrg, SimRepo

API_VERSION = "2022-11-28"          # GitHub's default when no X-GitHub-Api-Version is sent
API_VERSIONS = ("2022-11-28", "2026-03-10")
DOCS = "https://docs.github.com/rest"
CONTENTS_MAX_BYTES = 1024 * 1024          # larger files: 403 too_large (default media type)
SEARCH_MAX_RESULTS = 1000


class ApiError(Exception):
    """A GitHub-shaped error answer: ``{"message", "documentation_url", "status"}``."""

    def __init__(self, status: int, message: str, doc: str | None = None,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.doc, self.errors = status, message, doc, errors

    def body(self, default_doc: str) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message, "documentation_url": self.doc or default_doc}
        if self.errors:      # GitHub's "validation-error" shape has no "status"
            out["errors"] = self.errors
        else:
            out["status"] = str(self.status)
        return out


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, headers=headers, media_type="application/json; charset=utf-8")


def node_id(kind: str, ident: int | str) -> str:
    """A legacy GitHub global node id: base64 of ``0<len>:<Type><id>``."""
    return base64.b64encode(f"0{len(kind)}:{kind}{ident}".encode()).decode()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def http_date(iso_ts: str) -> str:
    return format_datetime(datetime.fromisoformat(iso_ts.replace("Z", "+00:00")).astimezone(UTC), usegmt=True)


def base64_lines(data: bytes) -> str:
    """Base64 wrapped every 60 characters with a trailing newline, as GitHub sends it."""
    b64 = base64.b64encode(data).decode()
    return "".join(b64[i:i + 60] + "\n" for i in range(0, len(b64), 60))


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def sim(request: Request) -> Any:
    return request.app.state.sim


def legacy(request: Request) -> bool:
    """True for API version 2022-11-28, which keeps the fields 2026-03-10 removed."""
    return getattr(request.state, "api_version", API_VERSION) == "2022-11-28"


# ---------------------------------------------------------------------------
# shapes

def user_json(base: str, login: str, uid: int, kind: str = "User") -> dict[str, Any]:
    u = f"{base}/users/{login}"
    return {
        "login": login, "id": uid, "node_id": node_id(kind, uid),
        "avatar_url": f"{base}/avatars/u/{uid}?v=4", "gravatar_id": "", "url": u,
        "html_url": f"{base}/{login}", "followers_url": f"{u}/followers",
        "following_url": f"{u}/following{{/other_user}}", "gists_url": f"{u}/gists{{/gist_id}}",
        "starred_url": f"{u}/starred{{/owner}}{{/repo}}", "subscriptions_url": f"{u}/subscriptions",
        "organizations_url": f"{u}/orgs", "repos_url": f"{u}/repos", "events_url": f"{u}/events{{/privacy}}",
        "received_events_url": f"{u}/received_events", "type": kind, "user_view_type": "public",
        "site_admin": False,
    }


def org_owner_json(base: str, org: SimOrg) -> dict[str, Any]:
    return user_json(base, org.login, org.id, "Organization")


_REPO_URL_TEMPLATES = {
    "forks_url": "/forks", "keys_url": "/keys{/key_id}", "collaborators_url": "/collaborators{/collaborator}",
    "teams_url": "/teams", "hooks_url": "/hooks", "issue_events_url": "/issues/events{/number}",
    "events_url": "/events", "assignees_url": "/assignees{/user}", "branches_url": "/branches{/branch}",
    "tags_url": "/tags", "blobs_url": "/git/blobs{/sha}", "git_tags_url": "/git/tags{/sha}",
    "git_refs_url": "/git/refs{/sha}", "trees_url": "/git/trees{/sha}", "statuses_url": "/statuses/{sha}",
    "languages_url": "/languages", "stargazers_url": "/stargazers", "contributors_url": "/contributors",
    "subscribers_url": "/subscribers", "subscription_url": "/subscription", "commits_url": "/commits{/sha}",
    "git_commits_url": "/git/commits{/sha}", "comments_url": "/comments{/number}",
    "issue_comment_url": "/issues/comments{/number}", "contents_url": "/contents/{+path}",
    "compare_url": "/compare/{base}...{head}", "merges_url": "/merges",
    "archive_url": "/{archive_format}{/ref}", "downloads_url": "/downloads", "issues_url": "/issues{/number}",
    "pulls_url": "/pulls{/number}", "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}", "labels_url": "/labels{/name}",
    "releases_url": "/releases{/id}", "deployments_url": "/deployments",
}


def repo_json(base: str, org: SimOrg, repo: SimRepo, *, open_issues: int, authenticated: bool,
              full: bool = False, legacy: bool = False) -> dict[str, Any]:
    api = f"{base}/repos/{repo.full_name}"
    web = f"{base}/{repo.full_name}"
    host = base.split("://", 1)[-1]
    out: dict[str, Any] = {
        "id": repo.id, "node_id": node_id("Repository", repo.id), "name": repo.name,
        "full_name": repo.full_name, "private": repo.private, "owner": org_owner_json(base, org),
        "html_url": web, "description": repo.description, "fork": repo.fork, "url": api,
        **{key: api + suffix for key, suffix in _REPO_URL_TEMPLATES.items()},
        "git_url": f"git://{host}/{repo.full_name}.git", "ssh_url": f"git@{host}:{repo.full_name}.git",
        "clone_url": f"{web}.git", "svn_url": web, "mirror_url": None, "homepage": None,
        "language": repo.language, "forks_count": 0, "stargazers_count": 0, "watchers_count": 0,
        "size": repo.size_kb, "default_branch": repo.default_branch, "open_issues_count": open_issues,
        "is_template": False, "topics": [], "has_issues": True, "has_projects": True, "has_wiki": True,
        "has_pages": False, "has_discussions": False, "archived": repo.archived, "disabled": False,
        "visibility": "private" if repo.private else "public", "pushed_at": repo.pushed_at,
        "created_at": repo.created_at, "updated_at": repo.updated_at, "allow_forking": True,
        "web_commit_signoff_required": False, "license": None, "forks": 0, "open_issues": open_issues,
        "watchers": 0,
    }
    if legacy:
        out["has_downloads"] = True
    if authenticated:
        out["permissions"] = {"admin": False, "maintain": False, "push": True, "triage": True, "pull": True}
    if full:
        out.update({"organization": org_owner_json(base, org), "network_count": 0, "subscribers_count": 0,
                    "temp_clone_token": None if not repo.private else ""})
    return out


def label_json(base: str, full_name: str, name: str) -> dict[str, Any]:
    lid = int.from_bytes(hashlib.sha1(f"{full_name}:{name}".encode()).digest()[:4])
    return {"id": lid, "node_id": node_id("Label", lid), "url": f"{base}/repos/{full_name}/labels/{name}",
            "name": name, "color": hashlib.md5(name.encode()).hexdigest()[:6], "default": False,
            "description": None}


# ---------------------------------------------------------------------------
# issues: the simulator's mutable data

@dataclass
class SimIssue:
    id: int
    number: int
    full_name: str
    title: str
    body: str | None
    user_id: int
    user_login: str
    created_at: str
    labels: list[str] = field(default_factory=list)
    state: str = "open"
    state_reason: str | None = None
    updated_at: str = ""
    closed_at: str | None = None
    closed_by: tuple[str, int] | None = None


class IssueStore:
    def __init__(self) -> None:
        self._by_repo: dict[str, list[SimIssue]] = {}
        self._next_id = 3_000_000_000

    def of(self, repo: SimRepo) -> list[SimIssue]:
        return self._by_repo.setdefault(repo.full_name.lower(), [])

    def all(self) -> list[SimIssue]:
        return [i for issues in self._by_repo.values() for i in issues]

    def open_count(self, repo: SimRepo) -> int:
        return sum(1 for i in self._by_repo.get(repo.full_name.lower(), ()) if i.state == "open")

    def create(self, repo: SimRepo, *, title: str, body: str | None, labels: list[str], user: tuple[str, int],
               now: float) -> SimIssue:
        issues = self.of(repo)
        self._next_id += 1
        issue = SimIssue(id=self._next_id, number=len(issues) + 1, full_name=repo.full_name, title=title,
                         body=body, user_login=user[0], user_id=user[1], created_at=iso(now),
                         updated_at=iso(now), labels=labels)
        issues.append(issue)
        return issue

    def get(self, repo: SimRepo, number: int) -> SimIssue | None:
        issues = self.of(repo)
        return issues[number - 1] if 1 <= number <= len(issues) else None


def issue_json(base: str, issue: SimIssue, *, search: bool = False, legacy: bool = False) -> dict[str, Any]:
    api = f"{base}/repos/{issue.full_name}"
    url = f"{api}/issues/{issue.number}"
    out: dict[str, Any] = {
        "url": url, "repository_url": api, "labels_url": f"{url}/labels{{/name}}",
        "comments_url": f"{url}/comments", "events_url": f"{url}/events",
        "html_url": f"{base}/{issue.full_name}/issues/{issue.number}", "id": issue.id,
        "node_id": node_id("Issue", issue.id), "number": issue.number, "title": issue.title,
        "user": user_json(base, issue.user_login, issue.user_id),
        "labels": [label_json(base, issue.full_name, name) for name in issue.labels],
        "state": issue.state, "state_reason": issue.state_reason, "locked": False, "assignees": [],
        "milestone": None, "comments": 0, "created_at": issue.created_at, "updated_at": issue.updated_at,
        "closed_at": issue.closed_at, "author_association": "MEMBER", "active_lock_reason": None,
        "body": issue.body, "timeline_url": f"{url}/timeline",
    }
    if legacy:
        out["assignee"] = None
    if search:
        out["score"] = 1.0
    else:
        out["closed_by"] = user_json(base, *issue.closed_by) if issue.closed_by else None
    return out


# ---------------------------------------------------------------------------
# pagination

def _int_param(request: Request, name: str, default: int) -> int:
    try:
        return int(request.query_params.get(name, default))
    except ValueError:
        return default


def paginate(request: Request, items: list[Any], cap: int | None = None) -> tuple[list[Any], dict[str, str]]:
    """Slice one page and build GitHub's ``Link`` header (rel prev, next, last, first)."""
    per_page = _int_param(request, "per_page", 30)
    per_page = 30 if per_page < 1 else min(per_page, 100)
    page = max(1, _int_param(request, "page", 1))
    reachable = len(items) if cap is None else min(len(items), cap)
    last = max(1, math.ceil(reachable / per_page))
    chunk = items[(page - 1) * per_page: page * per_page] if page <= last else []

    def link(p: int, rel: str) -> str:
        return f'<{request.url.include_query_params(page=p)}>; rel="{rel}"'

    rels = []
    if page > 1:
        rels.append(link(page - 1, "prev"))
    if page < last:
        rels.append(link(page + 1, "next"))
    if page != last:
        rels.append(link(last, "last"))
    if page > 1:
        rels.append(link(1, "first"))
    return chunk, ({"link": ", ".join(rels)} if rels else {})


# ---------------------------------------------------------------------------
# lookups

def _repo(request: Request, doc: str = f"{DOCS}/repos/repos#get-a-repository") -> SimRepo:
    org: SimOrg = sim(request).org
    owner, name = request.path_params["o"], request.path_params["r"]
    repo = org.repo(name) if owner.lower() == org.login.lower() else None
    if repo is None or (repo.private and not request.state.identity.authenticated):
        raise ApiError(404, "Not Found", doc)
    return repo


def _check_ref(repo: SimRepo, ref: str | None) -> None:
    """The simulator has one commit per repo: the head of the default branch."""
    b = repo.default_branch
    if ref is None or ref in (b, f"refs/heads/{b}", f"heads/{b}", "HEAD", repo.commit_sha):
        return
    raise ApiError(404, f"No commit found for the ref {ref}", f"{DOCS}/repos/contents#get-repository-content")


# ---------------------------------------------------------------------------
# handlers

def _sorted_repos(request: Request, repos: list[SimRepo], default_sort: str) -> list[SimRepo]:
    sort = request.query_params.get("sort", default_sort)
    key = {"created": "created_at", "updated": "updated_at", "pushed": "pushed_at"}.get(sort)
    direction = request.query_params.get("direction", "asc" if key is None else "desc")
    if key is None:
        ordered = sorted(repos, key=lambda r: r.full_name.lower())
    else:
        ordered = sorted(repos, key=lambda r: (getattr(r, key), r.id))
    return ordered[::-1] if direction == "desc" else ordered


async def list_owner_repos(request: Request) -> Response:
    state = sim(request)
    org: SimOrg = state.org
    is_org = "org" in request.path_params
    owner = request.path_params.get("org") or request.path_params["user"]
    doc = f"{DOCS}/repos/repos#list-organization-repositories" if is_org else \
        f"{DOCS}/repos/repos#list-repositories-for-a-user"
    if owner.lower() != org.login.lower():
        raise ApiError(404, "Not Found", doc)
    kind = request.query_params.get("type", "all" if is_org else "owner")
    authenticated = request.state.identity.authenticated
    repos = [r for r in org.repos if authenticated or not r.private]
    repos = [r for r in repos if {
        "public": not r.private, "private": r.private, "forks": r.fork, "sources": not r.fork,
    }.get(kind, True)]
    page, headers = paginate(request, _sorted_repos(request, repos, "created" if is_org else "full_name"))
    base = base_url(request)
    body = [repo_json(base, org, r, open_issues=state.issues.open_count(r), authenticated=authenticated,
                      legacy=legacy(request)) for r in page]
    return json_response(body, headers=headers)


async def get_repo(request: Request) -> Response:
    state = sim(request)
    repo = _repo(request)
    body = repo_json(base_url(request), state.org, repo, open_issues=state.issues.open_count(repo),
                     authenticated=request.state.identity.authenticated, full=True, legacy=legacy(request))
    return json_response(body, headers={"last-modified": http_date(repo.pushed_at)})


async def get_tree(request: Request) -> Response:
    doc = f"{DOCS}/git/trees#get-a-tree"
    repo = _repo(request, doc)
    if not repo.files:
        raise ApiError(409, "Git Repository is empty.", doc)
    ref = request.path_params["ref"]
    dir_path = repo.resolve_tree(ref)
    if dir_path is None:
        raise ApiError(404, "Not Found", doc)
    # GitHub: any value of ``recursive`` (even 0 or "false") recurses; omit it not to.
    recursive = "recursive" in request.query_params
    entries = repo.tree_entries(dir_path, recursive=recursive)
    limit = sim(request).config.faults.truncate_tree_entries
    truncated = recursive and len(entries) > limit
    if truncated:
        entries = entries[:limit]
    api = f"{base_url(request)}/repos/{repo.full_name}/git"
    sha = repo.tree_sha(dir_path)
    tree = [{**e, "url": f"{api}/{'trees' if e['type'] == 'tree' else 'blobs'}/{e['sha']}"} for e in entries]
    return json_response({"sha": sha, "url": f"{api}/trees/{sha}", "tree": tree, "truncated": truncated},
                         headers={"etag": f'"{hashlib.sha1(f"{sha}:{recursive}:{limit}".encode()).hexdigest()}"'})


def _wants_raw(request: Request) -> bool:
    return "application/vnd.github.raw" in request.headers.get("accept", "") or \
        "application/vnd.github.v3.raw" in request.headers.get("accept", "")


def _raw(file: SimFile) -> Response:
    return Response(file.content, media_type="application/vnd.github.raw",
                    headers={"etag": f'"{file.sha}"'})


async def get_blob(request: Request) -> Response:
    doc = f"{DOCS}/git/blobs#get-a-blob"
    repo = _repo(request, doc)
    state = sim(request)
    file = state.repo_blobs(repo).get(request.path_params["sha"].lower())
    if file is None:
        raise ApiError(404, "Not Found", doc)
    request.state.blob_sha = file.sha
    if _wants_raw(request):
        return _raw(file)
    api = f"{base_url(request)}/repos/{repo.full_name}/git/blobs/{file.sha}"
    return json_response({"sha": file.sha, "node_id": node_id("Blob", f"{repo.id}:{file.sha}"),
                          "size": file.size, "url": api, "content": base64_lines(file.content),
                          "encoding": "base64"}, headers={"etag": f'"{file.sha}"'})


def _content_links(base: str, repo: SimRepo, path: str, kind: str, sha: str) -> dict[str, Any]:
    branch = repo.default_branch
    path = quote(path)
    url = f"{base}/repos/{repo.full_name}/contents/{path}?ref={branch}"
    git = f"{base}/repos/{repo.full_name}/git/{'trees' if kind == 'dir' else 'blobs'}/{sha}"
    html = f"{base}/{repo.full_name}/{'tree' if kind == 'dir' else 'blob'}/{branch}/{path}"
    return {"url": url, "git_url": git, "html_url": html,
            "download_url": None if kind == "dir" else f"{base}/raw/{repo.full_name}/{branch}/{path}",
            "_links": {"self": url, "git": git, "html": html}}


async def get_contents(request: Request) -> Response:
    doc = f"{DOCS}/repos/contents#get-repository-content"
    repo = _repo(request, doc)
    _check_ref(repo, request.query_params.get("ref"))
    if not repo.files:
        raise ApiError(404, "This repository is empty.", doc)
    path = request.path_params.get("path", "").strip("/")
    base = base_url(request)
    file = repo.file(path) if path else None
    headers = {"last-modified": http_date(repo.pushed_at)}
    if file is not None:
        if _wants_raw(request):
            request.state.blob_sha = file.sha
            return _raw(file)
        accept = request.headers.get("accept", "")
        big = file.size > CONTENTS_MAX_BYTES
        if big and "application/vnd.github.object" not in accept:
            raise ApiError(403, "This API returns blobs up to 1 MB in size. The requested blob is too large to "
                           "fetch via the API, but you can use the Git Data API to request blobs up to 100 MB "
                           "in size.", doc, [{"resource": "Blob", "field": "data", "code": "too_large"}])
        if not big:
            request.state.blob_sha = file.sha
        body = {"type": "file", "encoding": "none" if big else "base64", "size": file.size,
                "name": file.name, "path": file.path, "content": "" if big else base64_lines(file.content),
                "sha": file.sha, **_content_links(base, repo, file.path, "file", file.sha)}
        return json_response(body, headers={**headers, "etag": f'"{file.sha}"'})
    try:
        dir_sha = repo.tree_sha(path)
    except KeyError:
        raise ApiError(404, "Not Found", doc) from None
    items = []
    for e in repo.tree_entries(path, recursive=False):
        full = f"{path}/{e['path']}" if path else e["path"]
        kind = "dir" if e["type"] == "tree" else "file"
        items.append({"type": kind, "size": e.get("size", 0), "name": e["path"], "path": full, "sha": e["sha"],
                      **_content_links(base, repo, full, kind, e["sha"])})
    return json_response(items, headers={**headers, "etag": f'W/"{dir_sha}"'})


def _issue_filter(request: Request, issues: list[SimIssue]) -> list[SimIssue]:
    state = request.query_params.get("state", "open")
    if state != "all":
        issues = [i for i in issues if i.state == state]
    if labels := request.query_params.get("labels"):
        wanted = {x.strip().lower() for x in labels.split(",") if x.strip()}
        issues = [i for i in issues if wanted <= {n.lower() for n in i.labels}]
    sort = request.query_params.get("sort", "created")
    key = (lambda i: i.updated_at) if sort == "updated" else (lambda i: i.number)
    ordered = sorted(issues, key=key)
    return ordered if request.query_params.get("direction", "desc") == "asc" else ordered[::-1]


async def list_issues(request: Request) -> Response:
    repo = _repo(request, f"{DOCS}/issues/issues#list-repository-issues")
    page, headers = paginate(request, _issue_filter(request, sim(request).issues.of(repo)))
    base = base_url(request)
    return json_response([issue_json(base, i, legacy=legacy(request)) for i in page], headers=headers)


async def _json_body(request: Request, doc: str) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "Problems parsing JSON", doc) from None
    if not isinstance(data, dict):
        raise ApiError(400, "Problems parsing JSON", doc)
    return data


def _invalid(doc: str, detail: str) -> ApiError:
    return ApiError(422, f"Invalid request.\n\n{detail}", doc)


def _labels(data: dict[str, Any], doc: str) -> list[str]:
    raw = data.get("labels", [])
    names = [x.get("name") if isinstance(x, dict) else x for x in raw] if isinstance(raw, list) else None
    labels = [n for n in names or () if isinstance(n, str) and n]
    if names is None or len(labels) != len(names):
        raise _invalid(doc, 'For \'properties/labels\', the value is not an array of strings.')
    return list(dict.fromkeys(labels))


def _writable(repo: SimRepo, doc: str) -> None:
    if repo.archived:
        raise ApiError(403, "Repository was archived so is read-only.", doc)


async def create_issue(request: Request) -> Response:
    doc = f"{DOCS}/issues/issues#create-an-issue"
    repo = _repo(request, doc)
    data = await _json_body(request, doc)
    _writable(repo, doc)
    title = data.get("title")
    if isinstance(title, int) and not isinstance(title, bool):
        title = str(title)
    if not isinstance(title, str) or not title.strip():
        raise _invalid(doc, '"title" wasn\'t supplied.')
    body = data.get("body")
    if body is not None and not isinstance(body, str):
        raise _invalid(doc, "For 'properties/body', the value is not a string or null.")
    ident = request.state.identity
    state = sim(request)
    issue = state.issues.create(repo, title=title, body=body, labels=_labels(data, doc),
                                user=(ident.login, ident.user_id), now=state.clock())
    out = issue_json(base_url(request), issue, legacy=legacy(request))
    return json_response(out, status=201, headers={"location": out["url"]})


async def get_issue(request: Request) -> Response:
    doc = f"{DOCS}/issues/issues#get-an-issue"
    repo = _repo(request, doc)
    issue = sim(request).issues.get(repo, _int_path(request, "n", doc))
    if issue is None:
        raise ApiError(404, "Not Found", doc)
    return json_response(issue_json(base_url(request), issue, legacy=legacy(request)))


def _int_path(request: Request, name: str, doc: str) -> int:
    try:
        return int(request.path_params[name])
    except ValueError:
        raise ApiError(404, "Not Found", doc) from None


async def update_issue(request: Request) -> Response:
    doc = f"{DOCS}/issues/issues#update-an-issue"
    repo = _repo(request, doc)
    state = sim(request)
    issue = state.issues.get(repo, _int_path(request, "n", doc))
    if issue is None:
        raise ApiError(404, "Not Found", doc)
    data = await _json_body(request, doc)
    _writable(repo, doc)
    if "title" in data:
        if not isinstance(data["title"], str) or not data["title"].strip():
            raise _invalid(doc, "For 'properties/title', the value is not a non-empty string.")
        issue.title = data["title"]
    if "body" in data:
        if data["body"] is not None and not isinstance(data["body"], str):
            raise _invalid(doc, "For 'properties/body', the value is not a string or null.")
        issue.body = data["body"]
    if "labels" in data:
        issue.labels = _labels(data, doc)
    now = state.clock()
    if "state" in data:
        new_state = data["state"]
        if new_state not in ("open", "closed"):
            raise _invalid(doc, f'For \'properties/state\', "{new_state}" is not one of ["open", "closed"].')
        if new_state != issue.state:
            ident = request.state.identity
            issue.state = new_state
            issue.closed_at = iso(now) if new_state == "closed" else None
            issue.closed_by = (ident.login, ident.user_id) if new_state == "closed" else None
            issue.state_reason = data.get("state_reason") or ("completed" if new_state == "closed" else "reopened")
    issue.updated_at = iso(now)
    return json_response(issue_json(base_url(request), issue, legacy=legacy(request)))


_TOKEN = re.compile(r'(-?)(\w+):"([^"]*)"|(-?)(\w+):(\S+)|"([^"]*)"|(\S+)')


def _search_filter(q: str, issues: list[SimIssue]) -> list[SimIssue]:
    texts: list[str] = []
    where = {"title", "body"}
    for m in _TOKEN.finditer(q):
        neg, key, value = (m.group(1), m.group(2), m.group(3)) if m.group(2) else (m.group(4), m.group(5), m.group(6))
        if key is None:
            texts.append((m.group(7) if m.group(7) is not None else m.group(8)).lower())
            continue
        key, low = key.lower(), value.lower()

        def keep(pred: Any, negate: bool = bool(neg)) -> None:
            nonlocal issues
            issues = [i for i in issues if bool(pred(i)) != negate]

        if key == "repo":
            keep(lambda i, v=low: i.full_name.lower() == v)
        elif key in ("org", "user", "owner"):
            keep(lambda i, v=low: i.full_name.lower().split("/")[0] == v)
        elif key in ("is", "state") and low in ("open", "closed"):
            keep(lambda i, v=low: i.state == v)
        elif key in ("is", "type") and low in ("issue", "pr", "pull-request"):
            keep(lambda i, v=low: v == "issue")
        elif key == "label":
            keep(lambda i, v=low: v in {n.lower() for n in i.labels})
        elif key == "author":
            keep(lambda i, v=low: i.user_login.lower() == v)
        elif key == "in":
            where = {w for w in low.split(",") if w in ("title", "body")} or where
        else:
            texts.append(m.group(0).lower())
    for text in texts:
        issues = [i for i in issues if any(text in (getattr(i, w) or "").lower() for w in where)]
    return issues


async def search_issues(request: Request) -> Response:
    doc = f"{DOCS}/search/search#search-issues-and-pull-requests"
    q = request.query_params.get("q", "").strip()
    if not q:
        raise ApiError(422, "Validation Failed", doc, [{"resource": "Search", "field": "q", "code": "missing"}])
    found = _search_filter(q, sim(request).issues.all())
    sort = request.query_params.get("sort")
    if sort in ("created", "updated", "comments"):
        found.sort(key=(lambda i: i.updated_at) if sort == "updated" else (lambda i: i.created_at))
        if request.query_params.get("order", "desc") == "desc":
            found.reverse()
    page = max(1, _int_param(request, "page", 1))
    per_page = min(max(_int_param(request, "per_page", 30), 1), 100)
    if (page - 1) * per_page >= SEARCH_MAX_RESULTS:
        raise ApiError(422, "Only the first 1000 search results are available", doc)
    chunk, headers = paginate(request, found, cap=SEARCH_MAX_RESULTS)
    base = base_url(request)
    return json_response({"total_count": len(found), "incomplete_results": False, "search_type": "lexical",
                          "items": [issue_json(base, i, search=True, legacy=legacy(request)) for i in chunk]},
                         headers=headers)


async def not_found(request: Request) -> Response:
    raise ApiError(404, "Not Found", DOCS)
