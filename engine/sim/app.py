"""The simulator's Starlette app: routing, and the pipeline every API call goes through.

Why it is built this way:

* One function, :func:`_serve`, wraps every REST and GraphQL handler, in the
  order GitHub's front end applies things: credentials (401) → concurrency and
  rate limits (403/429, reserving the request's point) → latency → injected
  faults → the handler → conditional-request check (304, point returned) →
  ``x-ratelimit-*``/``x-github-request-id`` headers on whatever goes out. So
  every response, errors included, carries the headers of its bucket, and the
  limits cannot be bypassed by an endpoint that forgot them.
* State lives in one :class:`SimState` on ``app.state.sim`` and is created in
  :func:`create_app`, not in a lifespan hook, so the app works the same under
  uvicorn and through ``httpx.ASGITransport`` (which runs no lifespan).
* ``x-ratelimit-reset`` is GitHub's integer epoch when ``time_scale`` is 1. When
  time is scaled it is sent as a decimal epoch ("1763800000.250"): at
  ``time_scale=0.001`` an hour lasts 3.6 s, and integer seconds would misplace
  the reset by up to a third of the window, making a correct client look like a
  violator. ``retry-after`` is likewise decimal when scaled (integer otherwise).
  Integer resets are rounded up, so waiting until the announced second is safe.
* ``/_sim/*`` (stats, truth, reset, faults) is the test harness's side door: no
  auth, no limits, no faults, not counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
from asyncio import CancelledError, get_running_loop
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.errors import InputError
from engine.sim import rest
from engine.sim.apps import SimApps, app_config_from_dict
from engine.sim.apps import routes as app_routes
from engine.sim.config import SimConfig
from engine.sim.data import SimFile, SimOrg, SimRepo
from engine.sim.faults import SERVER_ERROR_BODIES, FaultInjector, ResetResponse
from engine.sim.graphql_api import graphql_endpoint
from engine.sim.issues import ROUTES as ISSUE_ROUTES
from engine.sim.issues import sim_issue_faults
from engine.sim.limits import Identity, RateLimiter, RateSnapshot, Refusal, identity_for
from engine.sim.rest import ApiError, IssueStore, json_response
from engine.sim.stats import SimStats

RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_DOCS = f"{RATE_DOCS}#about-secondary-rate-limits"
GRAPHQL_AUTH_DOCS = "https://docs.github.com/graphql/guides/forming-calls-with-graphql#authenticating-with-graphql"
VERSION_DOCS = "https://docs.github.com/rest/about-the-rest-api/api-versions"
VARY = "Accept, Authorization, Cookie, X-GitHub-OTP, Accept-Encoding"

Handler = Callable[[Request], Awaitable[Response]]
_CONVERTER = re.compile(r":\w+}")   # "{path:path}" → "{path}" in stats keys


class SimState:
    """Everything the simulator knows: the org, issues, limits, faults, stats."""

    def __init__(self, config: SimConfig, org: SimOrg, clock: Callable[[], float] = time.time) -> None:
        self.config, self.org, self.clock = config, org, clock
        self.stats = SimStats()
        self.limiter = RateLimiter(config)
        self.faults = FaultInjector(config.faults, config.seed, clock())
        self.issues = IssueStore()
        self.apps = SimApps(app_config_from_dict(config.app, "config"), org.login, org.id, len(org.repos))
        self._request_seq = 0
        self._repo_blobs: dict[str, dict[str, SimFile]] = {}

    def repo_blobs(self, repo: SimRepo) -> dict[str, SimFile]:
        """Blob sha → file, within one repo (a sha of another repo is a 404 there)."""
        blobs = self._repo_blobs.get(repo.full_name)
        if blobs is None:
            blobs = self._repo_blobs[repo.full_name] = {f.sha: f for f in repo.files.values()}
        return blobs

    def next_request_id(self) -> str:
        self._request_seq += 1
        h = hashlib.sha1(f"{self.config.seed}:{self._request_seq}".encode()).hexdigest().upper()
        return f"{h[0:4]}:{h[4:8]}:{h[8:14]}:{h[14:20]}:{int(self.clock()) & 0xFFFFFFFF:08X}"

    def reset(self) -> None:
        """Zero the stats, refill every bucket, replay the same faults; keep data and issues."""
        self.stats = SimStats()
        self.limiter.reset()
        self.faults.reseed()
        self._request_seq = 0


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    resource: str | None = "core"         # the bucket charged; None: headers of core, no charge
    creates_content: bool = False
    auth_message: str | None = None       # 401 with this message when called without a token
    auth_docs: str = rest.DOCS
    cacheable: bool = True
    template: str = ""

    @property
    def name(self) -> str:
        return self.template or f"{self.method} {_CONVERTER.sub('}', self.path)}"


# ---------------------------------------------------------------------------
# the pipeline

def _token(header: str | None) -> tuple[bool, str | None]:
    """(well formed, token). No header is well formed and anonymous."""
    if header is None:
        return True, None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return True, value.strip()
    return False, None


def _epoch(value: float, scaled: bool) -> str:
    """Seconds rounded *up* (to the millisecond when scaled): waiting until then is always enough."""
    return f"{math.ceil(value * 1000) / 1000:.3f}" if scaled else str(math.ceil(value))


def _rate_headers(snap: RateSnapshot, scaled: bool) -> dict[str, str]:
    return {"x-ratelimit-limit": str(snap.limit), "x-ratelimit-remaining": str(snap.remaining),
            "x-ratelimit-reset": _epoch(snap.reset, scaled), "x-ratelimit-used": str(snap.used),
            "x-ratelimit-resource": snap.resource}


def _refusal_response(state: SimState, refusal: Refusal, ident: Identity, resource: str, rid: str) -> Response:
    if refusal.kind == "primary":
        if resource == "graphql":
            return json_response({"errors": [{"type": "RATE_LIMITED", "code": "graphql_rate_limit", "message":
                                              f"API rate limit already exceeded for user ID {ident.user_id}."}]})
        stamp = datetime.fromtimestamp(state.clock(), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        who = f"user ID {ident.user_id}." if ident.authenticated else (
            f"{ident.ip}. (But here's the good news: Authenticated requests get a higher rate limit. "
            "Check out the documentation for more details.)")
        message = (f"API rate limit exceeded for {who} If you reach out to GitHub Support for help, please "
                   f"include the request ID {rid} and timestamp {stamp}.")
        return json_response({"message": message, "documentation_url": RATE_DOCS}, status=refusal.status)
    if refusal.content:
        message = ("You have exceeded a secondary rate limit and have been temporarily blocked from content "
                   "creation. Please retry your request again later.")
    else:
        message = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
    message += f" If you reach out to GitHub Support for help, please include the request ID {rid}."
    headers = {}
    if refusal.retry_after is not None:
        headers["retry-after"] = _epoch(refusal.retry_after, state.config.time_scale != 1.0)
    return json_response({"message": message, "documentation_url": SECONDARY_DOCS}, status=refusal.status,
                         headers=headers)


def _matches(etag: str, if_none_match: str) -> bool:
    def bare(tag: str) -> str:
        tag = tag.strip()
        return tag[2:] if tag.startswith("W/") else tag
    return any(t.strip() == "*" or bare(t) == bare(etag) for t in if_none_match.split(","))


def _not_modified(request: Request, etag: str, last_modified: str | None) -> bool:
    inm = request.headers.get("if-none-match")
    if inm is not None:
        return _matches(etag, inm)
    ims = request.headers.get("if-modified-since")
    if ims and last_modified:
        try:
            return parsedate_to_datetime(last_modified) <= parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
    return False


def _conditional(request: Request, response: Response, authenticated: bool) -> Response:
    """Add ETag and caching headers to a 200; answer 304 (no body) when the client's copy is current."""
    etag = response.headers.get("etag") or f'W/"{hashlib.sha256(response.body).hexdigest()}"'
    cache = f"{'private' if authenticated else 'public'}, max-age=60, s-maxage=60"
    response.headers.update({"etag": etag, "cache-control": cache, "vary": VARY})
    if not _not_modified(request, etag, response.headers.get("last-modified")):
        return response
    kept = {k: v for k, v in response.headers.items() if k in ("etag", "last-modified", "cache-control", "vary")}
    return Response(status_code=304, headers=kept)


async def _serve(request: Request, ep: Endpoint) -> Response:
    state: SimState = request.app.state.sim
    stats, limiter, cfg = state.stats, state.limiter, state.config
    scaled = cfg.time_scale != 1.0
    stats.requests_total += 1
    stats.requests[ep.name] += 1
    rid = state.next_request_id()
    ip = request.client.host if request.client else "127.0.0.1"
    well_formed, token = _token(request.headers.get("authorization"))
    resource = ep.resource or "core"
    version = request.headers.get("x-github-api-version", rest.API_VERSION)
    base_headers = {"x-github-request-id": rid, "x-github-api-version-selected": version,
                    "x-github-media-type": "github.v3; format=json", "x-content-type-options": "nosniff"}

    def finish(response: Response, ident: Identity, res: str = resource) -> Response:
        response.headers.update(base_headers)
        response.headers.update(_rate_headers(limiter.snapshot(ident, res, state.clock()), scaled))
        stats.statuses[response.status_code] += 1
        return response

    if version not in rest.API_VERSIONS:
        base_headers["x-github-api-version-selected"] = rest.API_VERSION
        return finish(json_response({"message": f"Unsupported 'X-GitHub-Api-Version' header: {version}",
                                     "documentation_url": VERSION_DOCS, "status": "400"}, status=400),
                      identity_for(token if well_formed else None, ip))
    request.state.api_version = version
    if not well_formed or token in cfg.invalid_tokens or state.apps.rejects(token, state.clock()):
        stats.bad_credentials += 1
        return finish(json_response({"message": "Bad credentials", "documentation_url": rest.DOCS,
                                     "status": "401"}, status=401), identity_for(None, ip), "core")
    ident = state.apps.identity(token, ip) or identity_for(token, ip)
    if ep.auth_message and not ident.authenticated:
        return finish(json_response({"message": ep.auth_message, "documentation_url": ep.auth_docs,
                                     "status": "401"}, status=401), ident, "core")
    request.state.identity = ident
    request.state.request_id = rid
    limiter.enter(ident)
    stats.peak_concurrency = max(stats.peak_concurrency, limiter.peak_concurrency)
    loop = get_running_loop()
    busy_until = loop.time()        # when the work in progress would end (latency, a hang)
    leave_now = True
    try:
        now = state.clock()
        received_at = request.scope.get(RECEIVED_AT)    # read off the socket (loopback server only)
        connection = f"{request.client.host}:{request.client.port}" if request.client else ""
        refusal = limiter.admit(ident, request.method, ep.resource, now, ep.creates_content,
                                force_block=state.faults.secondary_block_due(),
                                arrived=now if received_at is None else min(now, received_at),
                                connection=connection)
        if refusal is not None:
            stats.limit_responses[refusal.kind] += 1
            if refusal.kind == "secondary":
                stats.secondary_reasons[refusal.reason] += 1
            if refusal.violation:
                stats.violations += 1
                stats.violations_by_kind[refusal.kind] += 1
                if ep.creates_content:      # a create sent while the token was blocked
                    stats.violations_by_kind["content_creation"] += 1
            elif refusal.in_flight_at_block:
                stats.in_flight_at_block += 1
            elif refusal.told_elsewhere:
                stats.after_refusal_elsewhere += 1
            refused = finish(_refusal_response(state, refusal, ident, resource, rid), ident)
            if (block := refusal.block) is not None:   # once it is sent, the client knows of the block

                async def delivered() -> None:   # async: starlette runs a sync task in a thread
                    block.delivered(state.clock, connection)

                refused.background = BackgroundTask(delivered)
            return refused
        charged = ep.resource in ("core", "search")
        stats.points_used[resource] += charged
        latency = state.faults.latency_s()
        if latency > 0:
            busy_until = loop.time() + latency
            await asyncio.sleep(latency)
        fault = state.faults.decide(state.clock())
        if fault is not None:
            stats.faults_injected[fault.kind] += 1
            if fault.kind == "reset":
                return ResetResponse()
            if fault.kind == "timeout":
                busy_until = loop.time() + state.faults.faults.hang_s
                await state.faults.hang()
            status = fault.status or 504
            return finish(json_response(SERVER_ERROR_BODIES[status], status=status), ident)
        try:
            response = await ep.handler(request)
        except ApiError as err:
            response = json_response(err.body(rest.DOCS), status=err.status)
        if request.method in ("GET", "HEAD") and response.status_code == 200 and ep.cacheable:
            response = _conditional(request, response, ident.authenticated)
            if response.status_code == 304:
                stats.not_modified += 1
                if charged and ident.authenticated:   # GitHub: authenticated 304s are free
                    limiter.bucket(ident, resource).give_back(state.clock())
                    stats.points_used[resource] -= 1
            elif sha := getattr(request.state, "blob_sha", None):
                stats.blob_fetches[sha] += 1          # counted only when the content was sent
        return finish(response, ident)
    except CancelledError:
        # An in-process transport cancels the handler when its client gives up; a server
        # (uvicorn, GitHub) goes on working, and counting against concurrency, until done.
        if busy_until > loop.time():
            leave_now = False
            loop.call_later(busy_until - loop.time(), limiter.leave, ident)
        raise
    finally:
        if leave_now:
            limiter.leave(ident)


# ---------------------------------------------------------------------------
# rate limit status and the /_sim side door

async def rate_limit(request: Request) -> Response:
    state: SimState = request.app.state.sim
    ident, now = request.state.identity, state.clock()
    scaled = state.config.time_scale != 1.0

    def entry(resource: str) -> dict[str, Any]:
        s = state.limiter.snapshot(ident, resource, now)
        return {"limit": s.limit, "used": s.used, "remaining": s.remaining,
                "reset": math.ceil(s.reset * 1000) / 1000 if scaled else math.ceil(s.reset)}

    resources = {name: entry(name) for name in ("core", "search", "graphql")}
    body: dict[str, Any] = {"resources": resources}
    if rest.legacy(request):          # removed in API version 2026-03-10
        body["rate"] = resources["core"]
    return json_response(body, headers={"cache-control": "no-cache"})


async def sim_stats(request: Request) -> Response:
    state: SimState = request.app.state.sim
    return json_response({**state.stats.to_json(), "in_flight": state.limiter.in_flight_total})


async def sim_truth(request: Request) -> Response:
    org = request.app.state.sim.org
    return json_response({"findings": org.truth, "malformed": org.malformed})


async def sim_reset(request: Request) -> Response:
    request.app.state.sim.reset()
    return json_response({"reset": True})


async def sim_faults(request: Request) -> Response:
    state: SimState = request.app.state.sim
    if request.method == "POST":
        try:
            patch = await request.json()
            faults = state.config.faults.merged(patch, "POST /_sim/faults")
        except ValueError:
            return json_response({"message": "Problems parsing JSON"}, status=400)
        except InputError as err:
            return json_response({"message": str(err)}, status=422)
        state.config.faults = faults
        state.faults.faults = faults
    return json_response(state.config.faults.to_dict())


def _endpoints() -> list[Endpoint]:
    repo = "/repos/{o}/{r}"
    create_docs = f"{rest.DOCS}/issues/issues#create-an-issue"
    # issue tracking (engine.sim.issues) first: it decorates rest.py's issue routes below
    tracking = [Endpoint(method, path, handler, creates_content=creates,
                         auth_message="Requires authentication" if method != "GET" else None)
                for method, path, handler, creates in ISSUE_ROUTES]
    return [
        *tracking,
        Endpoint("GET", "/orgs/{org}/repos", rest.list_owner_repos),
        Endpoint("GET", "/users/{user}/repos", rest.list_owner_repos),
        Endpoint("GET", repo, rest.get_repo),
        Endpoint("GET", repo + "/git/trees/{ref:path}", rest.get_tree),
        Endpoint("GET", repo + "/git/blobs/{sha}", rest.get_blob),
        Endpoint("GET", repo + "/contents", rest.get_contents, template=f"GET {repo}/contents/{{path}}"),
        Endpoint("GET", repo + "/contents/{path:path}", rest.get_contents),
        Endpoint("GET", repo + "/issues", rest.list_issues),
        Endpoint("POST", repo + "/issues", rest.create_issue, creates_content=True,
                 auth_message="Requires authentication", auth_docs=create_docs),
        Endpoint("GET", repo + "/issues/{n}", rest.get_issue),
        Endpoint("PATCH", repo + "/issues/{n}", rest.update_issue, auth_message="Requires authentication",
                 auth_docs=f"{rest.DOCS}/issues/issues#update-an-issue"),
        Endpoint("GET", "/search/issues", rest.search_issues, resource="search"),
        Endpoint("GET", "/rate_limit", rate_limit, resource=None, cacheable=False),
        Endpoint("POST", "/graphql", graphql_endpoint, resource="graphql", cacheable=False,
                 auth_message="This endpoint requires you to be authenticated.", auth_docs=GRAPHQL_AUTH_DOCS),
    ]


def _route(ep: Endpoint, methods: list[str] | None = None) -> Route:
    async def endpoint(request: Request) -> Response:
        return await _serve(request, ep)
    return Route(ep.path, endpoint, methods=methods or [ep.method], name=ep.name)


#: scope key: when the server read the request's head (engine.sim.server stamps it)
RECEIVED_AT = "batchdeck.sim.received_at"


def create_app(config: SimConfig | None = None, org: SimOrg | None = None, *,
               clock: Callable[[], float] = time.time) -> Starlette:
    """Build the simulator app; the org is generated from ``config`` unless given."""
    config = config or SimConfig()
    if org is None:
        org = build_org(config)
    routes = [_route(ep) for ep in _endpoints()]
    routes += [
        Route("/_sim/stats", sim_stats, methods=["GET"]),
        Route("/_sim/truth", sim_truth, methods=["GET"]),
        Route("/_sim/reset", sim_reset, methods=["POST"]),
        Route("/_sim/faults", sim_faults, methods=["GET", "POST"]),
        Route("/_sim/issue_faults", sim_issue_faults, methods=["GET", "POST"]),
        *app_routes(),
    ]
    # GitHub answers unknown paths (and unknown methods) with a JSON 404 that is charged
    catch_all = Endpoint("GET", "/{rest:path}", rest.not_found, template="unmatched")
    routes.append(_route(catch_all, methods=["GET", "POST", "PATCH", "PUT", "DELETE"]))
    app = Starlette(routes=routes)
    app.state.sim = SimState(config, org, clock)
    return app


def build_org(config: SimConfig) -> SimOrg:
    """The org a config describes: loaded from ``repos_dir`` or generated from the seed."""
    if config.repos_dir:
        from engine.sim.repos_dir import load_repos_dir
        return load_repos_dir(config.repos_dir, config.org)
    from engine.sim.generate import generate_org
    return generate_org(login=config.org, repos=config.repos, seed=config.seed)
