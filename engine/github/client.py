"""The rate-aware GitHub client every job kind talks to.

One ``httpx.AsyncClient`` (one connection pool, reused by every request of the
run; transport choice in :mod:`engine.github.transport`) wrapped in the
behaviour GitHub asks of integrators, which no HTTP library provides because
it is GitHub's domain logic, not HTTP's:

* **primary limits** — every response's ``x-ratelimit-*`` headers feed a
  tracker per resource, and a pacer admits each request against
  ``rate_limit_buffer × limit``: at once until the budget is spent
  (``github.pacing: finish``, the default) or spread over the window
  (``spread``) (:mod:`engine.github.ratelimit`); a refusal waits for the reset
  and retries;
* **secondary limits** — a secondary limit pauses every lane (read, write,
  search, graphql) of the token; lanes space mutations and budget content
  creation (:mod:`engine.github.lanes`); a refused request is retried after the
  pause; points per minute are paced ahead (:mod:`engine.github.points`);
* **concurrency** — at most ``max_concurrent_requests`` requests are on the
  wire at once. A request the client gives up on (its ``request_timeout``
  passed, or its caller was cancelled) may still be running on the server, so
  its slot stays taken until the server must have finished it
  (``server_timeout_s`` after it was sent: GitHub ends any request after 10 s);
* **conditional requests** — GETs revalidate what the :class:`HttpCache`
  holds; a 304 costs no rate limit and is served from the cache;
* **errors** — every failure leaves as an :mod:`engine.errors` class
  (:mod:`engine.github.errors`), and the lane's circuit breaker sees it.

Limit waits are the only retries done here: they are the server's instruction,
and every caller of the lane must observe them together. Everything else
(server errors, network trouble) is raised for the engine's retry policy, which
requeues the item instead of holding a worker.

**Breakers.** The client records the outcome of every request on the lane's
breaker (``record_success`` / ``record_failure(error_class)``, without permits)
and, while the breaker is *open*, waits before sending until it half-opens. It
takes no half-open probe slot itself: the runner gates items with
``breaker.allow()``; if the client took a slot too, a half-open breaker with one
probe would deadlock the item holding it. Rate limits and client errors are
neutral to the breaker by its own rules.

**Token.** A fixed token, or ``auth`` (an object with ``async token(http, api_url,
refresh=False)``, such as a GitHub App installation,
:mod:`engine.github.app_auth`) asked before every attempt; a 401 with ``auth``
refreshes the token once. Sent as ``Authorization: Bearer`` only to the API's own origin (a
``Link`` or redirect to another host never gets it), registered for redaction,
and absent from every message and ``repr`` this package builds.
"""

from __future__ import annotations

import asyncio
import base64
import json as jsonlib
import logging
import math
import re
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import quote

import httpx

from engine.errors import (
    BatchProcessingError,
    ClientError,
    RateLimitError,
    SecondaryRateLimitError,
)
from engine.github.auth import RedactingFilter, register_secret
from engine.github.cache import CachedEntry, HttpCache, cache_key
from engine.github.errors import error_for_exception, error_for_response
from engine.github.lanes import Lanes
from engine.github.points import PointsWindow
from engine.github.ratelimit import (
    BudgetOutlook,
    RateLimiter,
    Reservation,
    budget_outlook,
    parse_rate_headers,
)
from engine.github.transport import make_transport
from engine.models import LaneView, RateLimitGauge

_AIOHTTP_ERRORS: tuple[type[Exception], ...]
try:   # aiohttp errors can escape httpx-aiohttp's mapping; catch them as network failures
    from aiohttp import ClientError as _AiohttpClientError
    _AIOHTTP_ERRORS = (_AiohttpClientError,)
except ImportError:   # pragma: no cover - aiohttp is a dependency
    _AIOHTTP_ERRORS = ()

log = logging.getLogger("engine.github")
log.addFilter(RedactingFilter())

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CACHED_HEADERS = ("content-type", "link", "etag", "last-modified")
DEFAULTS = {"rate_limit_buffer": 0.8, "time_scale": 1.0, "timeout": 30.0, "transport": "aiohttp",
            "pacing": "finish", "max_concurrent_requests": 100}
#: GitHub ends any request that takes longer than this (its documented server-side timeout)
GITHUB_SERVER_TIMEOUT_S = 10.0
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?([^";]+)"?')
_SEND_FAILURES = (httpx.HTTPError, OSError, TimeoutError, *_AIOHTTP_ERRORS)
#: statuses GitHub answers a secondary limit with (its body says whether it is one)
_MAY_BE_SECONDARY_LIMIT = frozenset({403, 429})

CountCallback = Callable[[str, int], None]
#: receives a streamed 2xx response's body (``download``); any other answer is read whole
BodySink = Callable[[httpx.Response], Awaitable[None]]
#: GitHub's media type for a blob's (or a file's) bytes as they are, not base64 inside JSON
RAW_MEDIA_TYPE = "application/vnd.github.raw+json"
#: a downloaded body stays in memory up to this size, then goes to a temporary file
SPOOL_IN_MEMORY_BYTES = 256 * 1024


def _user_agent() -> str:
    try:
        from importlib.metadata import version

        return f"batchdeck/{version('batchdeck')}"
    except Exception:
        return "batchdeck"


def parse_links(value: str | None) -> dict[str, str]:
    """``{rel: url}`` of a ``Link`` header."""
    return {rel: url for url, rel in _LINK.findall(value or "")}


class BodyTooLarge(ClientError):
    """A :meth:`GitHubClient.download` body above its ``max_bytes``: not read further."""

    def __init__(self, message: str, size: int, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.size = size


@dataclass(slots=True)
class Response:
    """An answer: ``data`` is the parsed JSON (None for an empty or non-JSON body)."""

    status: int
    data: Any
    headers: httpx.Headers
    from_cache: bool = False
    url: str = ""
    content: bytes = field(default=b"", repr=False)

    @property
    def links(self) -> dict[str, str]:
        return parse_links(self.headers.get("link"))


def _setting(config: Any, name: str) -> Any:
    """A value from a duck-typed config: ``config.batch.<name>``, ``config.github.<name>`` or ``config.<name>``."""
    if config is None:
        return None
    for section in ("batch", "github"):
        value = getattr(getattr(config, section, None), name, None)
        if value is not None:
            return value
    return getattr(config, name, None)


def _is_graphql_rate_limit(error: dict) -> bool:
    # GitHub answers an exhausted GraphQL bucket with 200 and type RATE_LIMITED.
    return str(error.get("type", "")).upper() in ("RATE_LIMITED", "RATE_LIMIT") or (
        not error.get("path") and "rate limit" in str(error.get("message", "")).lower())


async def _drain(response: httpx.Response, sink: BodySink | None) -> None:
    """A streamed response's body: a 2xx one into ``sink`` when there is one, any other read
    whole (an error body is small, and the request path parses it like any other)."""
    try:
        if sink is not None and 200 <= response.status_code < 300:
            await sink(response)
        else:
            await response.aread()
    finally:
        await response.aclose()


def _parse_body(content: bytes) -> Any:
    if not content:
        return None
    try:
        return jsonlib.loads(content)
    except ValueError:
        return None


#: the core limit assumed for a bucket no answer has described yet (a user token's)
ASSUMED_LIMIT = 5000

#: GitHub's documented secondary limits on points per minute
SECONDARY_POINTS_PER_MINUTE: Mapping[str, int] = {"rest": 900, "graphql": 2000}

class GitHubClient:
    """Rate-aware async GitHub REST and GraphQL client (see the module docstring).

    Settings come from the keyword arguments, else from ``config`` (an
    ``AppConfig``: ``batch.rate_limit_buffer``, ``batch.max_concurrent_requests``,
    ``github.time_scale``, ``github.request_timeout``, ``github.transport``,
    ``github.pacing``, ``github.api_url``), else the defaults:
    ``rate_limit_buffer=0.8``, ``time_scale=1.0``, ``timeout=30.0`` (the whole
    exchange), ``pacing="finish"``, 100 requests in flight (GitHub's limit), the
    aiohttp transport. ``transport`` may be a name
    (``"aiohttp"``, ``"httpx"``) or any ``httpx.AsyncBaseTransport``.
    ``on_count(name, n)`` hears ``api_requests``, ``api_requests_saved``,
    ``rate_limited``, ``secondary_limited`` and ``retries_after_wait``.
    """

    def __init__(
        self,
        api_url: str | None = None,
        token: str | None = None,
        *,
        config: Any = None,
        rate_limit_buffer: float | None = None,
        time_scale: float | None = None,
        timeout: float | None = None,
        breakers: Any = None,
        cache: HttpCache | None = None,
        transport: httpx.AsyncBaseTransport | str | None = None,
        max_connections: int = 100,
        on_count: CountCallback | None = None,
        limit_retries: int = 3,
        points_per_minute: Mapping[str, int] | None = SECONDARY_POINTS_PER_MINUTE,
        pacing: str | None = None,
        max_concurrent_requests: int | None = None,
        server_timeout_s: float = GITHUB_SERVER_TIMEOUT_S,
        auth: Any = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        def pick(value: Any, name: str, config_name: str | None = None) -> Any:
            if value is not None:
                return value
            from_config = _setting(config, config_name or name)
            return from_config if from_config is not None else DEFAULTS[name]

        self.api_url = (api_url or _setting(config, "api_url") or DEFAULT_API_URL).rstrip("/")
        self._origin = httpx.URL(self.api_url).copy_with(path="/", query=None, fragment=None)
        self._token = token or None
        register_secret(self._token)
        self._auth = auth
        self.pacing = str(pick(pacing, "pacing"))
        self.max_concurrent_requests = int(pick(max_concurrent_requests, "max_concurrent_requests"))
        self.server_timeout_s = server_timeout_s
        self._slots = asyncio.Semaphore(self.max_concurrent_requests)
        self._held_slots: set[asyncio.Task] = set()
        self.rate_limit_buffer = float(pick(rate_limit_buffer, "rate_limit_buffer"))
        self.time_scale = float(pick(time_scale, "time_scale"))
        self.timeout = float(pick(timeout, "timeout", "request_timeout"))
        if transport is None or isinstance(transport, str):
            self.transport_name = transport or pick(None, "transport")
            transport = make_transport(self.transport_name, max_connections=max_connections,
                                       on_refusal_status=lambda: self._lanes.pause.hold_early())
        else:
            self.transport_name = type(transport).__name__
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=True,   # renamed repos answer 301; httpx drops auth across origins
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": _user_agent(),
            },
        )
        self._breakers = breakers
        self._cache = cache
        self._on_count = on_count
        self._limit_retries = limit_retries
        self._clock = clock
        self._sleep = sleep
        self._limiter = RateLimiter(self.rate_limit_buffer, time_scale=self.time_scale, pacing=self.pacing,
                                    clock=clock, sleep=sleep)
        self._lanes = Lanes(time_scale=self.time_scale, clock=clock, sleep=sleep)
        # GitHub's secondary limit on points per minute, paced ahead (see points.py);
        # None (benchmarks against a simulator with the limit raised) turns it off.
        self._points = {
            kind: PointsWindow(per_minute, time_scale=self.time_scale, clock=clock, sleep=sleep)
            for kind, per_minute in (points_per_minute or {}).items()
        }
        self.counters: dict[str, int] = {}

    def bind(self, *, breakers: Any = None, on_count: CountCallback | None = None) -> None:
        """Attach a run's breaker registry and counter sink (the runner calls this):
        the client is built before the run that uses it."""
        if breakers is not None:
            self._breakers = breakers
        if on_count is not None:
            self._on_count = on_count

    @property
    def authenticated(self) -> bool:
        """Whether requests carry credentials (a token or an App's). GitHub answers GraphQL
        only to those; without, REST alone, from the 60-an-hour bucket of the client's IP."""
        return self._token is not None or self._auth is not None

    @property
    def cache(self) -> HttpCache | None:
        return self._cache

    def __repr__(self) -> str:
        who = "app" if self._auth is not None else "set" if self._token else "none"
        return f"GitHubClient(api_url={self.api_url!r}, token={who}, transport={self.transport_name!r})"

    def use_auth(self, auth: Any) -> None:
        """Authenticate every request with ``auth`` (a GitHub App installation...) instead of a token."""
        self._auth = auth

    async def __aenter__(self) -> GitHubClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for task in list(self._held_slots):
            task.cancel()
        await self._http.aclose()

    # -- observability ----------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n
        if self._on_count is not None:
            self._on_count(name, n)

    def rate_limits(self) -> list[RateLimitGauge]:
        """The primary buckets as last seen, with the pace each currently allows."""
        return self._limiter.gauges()

    def limit_content_creation(self, per_minute: float, per_hour: int) -> None:
        """Create content more slowly than GitHub's documented 80 a minute and 500 an hour
        (the write lane keeps the lower of the two, and still halves it on a refusal)."""
        content = self._lanes.get("write").content
        if content is not None:
            content.limit(per_minute, per_hour)

    def lanes(self) -> list[LaneView]:
        """Each lane's pause and write budget."""
        return self._lanes.views()

    @property
    def holding_lanes(self) -> bool:
        """True while a 403/429 that may be a secondary limit is being read: no lane sends."""
        return self._lanes.pause.held

    def client_for(self, owner: str | None) -> GitHubClient:
        """The client that serves ``owner``: this one (an
        :class:`~engine.github.router.OwnerRouter` picks one per org's installation)."""
        return self

    def budget_outlook(self, requests: int, resource: str = "core") -> BudgetOutlook:
        """What ``requests`` more requests of ``resource`` cost: budget left, next reset,
        windows needed and the waits for resets that implies (for progress displays).

        The run's plan knows how many requests remain; this knows the bucket. The
        rate assumed is the fastest the points-per-minute limit allows; a bucket not
        seen yet is assumed to hold GitHub's 5,000 an hour.
        """
        bucket = self._limiter.bucket(resource)
        points = self._points.get("graphql" if resource == "graphql" else "rest")
        rate = points.capacity / points.window if points is not None else 100.0 / max(self.time_scale, 1e-9)
        window_s = self._limiter.window_s(resource)
        now = self._clock()
        if bucket.limit is None and not bucket.untracked:
            budget = max(1, math.floor(self.rate_limit_buffer * ASSUMED_LIMIT))
            return budget_outlook(requests, budget_left=budget, budget_per_window=budget, now=now, reset_at=None,
                                  window_s=window_s, rate_per_s=rate)
        return bucket.outlook(requests, now, window_s=window_s, rate_per_s=rate)

    # -- routing ----------------------------------------------------------------------

    @property
    def graphql_url(self) -> str:
        # GitHub Enterprise serves REST under /api/v3 and GraphQL under /api/graphql.
        if self.api_url.endswith("/api/v3"):
            return self.api_url[: -len("/v3")] + "/graphql"
        return self.api_url + "/graphql"

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self.api_url + "/" + path_or_url.lstrip("/")

    def _same_origin(self, url: httpx.URL) -> bool:
        return (url.scheme, url.host, url.port) == (self._origin.scheme, self._origin.host, self._origin.port)

    @staticmethod
    def _resource_for(url: httpx.URL, graphql_url: str) -> str:
        if str(url).startswith(graphql_url):
            return "graphql"
        path = url.path
        if "/search/code" in path:
            return "code_search"
        if "/search/" in path:
            return "search"
        return "core"

    @staticmethod
    def _lane_for(method: str, resource: str) -> str:
        if resource == "graphql":
            return "graphql"
        if resource in ("search", "code_search"):
            return "search"
        return "read" if method in SAFE_METHODS else "write"

    # -- the request path -------------------------------------------------------------

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        lane: str | None = None,
        resource: str | None = None,
        conditional: bool = True,
        headers: Mapping[str, str] | None = None,
        body_sink: BodySink | None = None,
    ) -> Response:
        """Send one request through the lane, the pacer and the cache.

        Raises an :mod:`engine.errors` exception for any failure; limit refusals
        are waited out and retried (up to ``limit_retries``) first. With
        ``body_sink`` the response is streamed and a 2xx body goes to the sink
        (within ``request_timeout``; a body cut short is a network error), not
        into ``Response.content`` (see :meth:`download`).
        """
        method = method.upper()
        http_request = self._http.build_request(method, self._url(path_or_url), params=params, json=json,
                                                headers=headers)
        url = str(http_request.url)
        resource = resource or self._resource_for(http_request.url, self.graphql_url)
        lane_name = lane or self._lane_for(method, resource)
        mutation = method not in SAFE_METHODS and (resource != "graphql" or lane_name == "write")
        creates_content = mutation and method == "POST"

        cached: CachedEntry | None = None
        cache = self._cache if method == "GET" and conditional else None
        key = cache_key(method, url) if cache is not None else None
        if cache is not None and key is not None:
            cached = await cache.get(key)
            if cached is not None:
                if cached.etag:
                    http_request.headers["If-None-Match"] = cached.etag
                if cached.last_modified:
                    http_request.headers["If-Modified-Since"] = cached.last_modified

        lane_obj = self._lanes.get(lane_name)
        breaker = self._breakers.get(lane_name) if self._breakers is not None else None
        waits = 0
        refreshed = False
        while True:
            await self._wait_for_breaker(breaker)
            token = await self._current_token(refresh=False)
            if token and self._same_origin(http_request.url):
                http_request.headers["Authorization"] = f"Bearer {token}"
            reservation, sent_at = await self._admit(lane_name, resource, mutation, creates_content)
            settled = False
            held = False                           # this attempt holds the token's lanes
            abandoned_at: float | None = None      # loop time the request went out, if we gave up on it
            try:
                self._count("api_requests")
                on_wire_since = asyncio.get_running_loop().time()
                try:
                    # request_timeout bounds the whole exchange, whatever the transport does
                    async with asyncio.timeout(self.timeout):
                        response = await self._http.send(http_request, stream=True)
                        if response.status_code in _MAY_BE_SECONDARY_LIMIT and not held:
                            # tripped on the status line, before awaiting the body: until this
                            # answer is booked below, no task of the token sends (see lanes.py)
                            self._lanes.pause.hold()
                            held = True
                        await _drain(response, body_sink)
                except _SEND_FAILURES as exc:
                    if isinstance(exc, TimeoutError | httpx.TimeoutException):
                        abandoned_at = on_wire_since
                    self._limiter.settle(reservation, None)
                    settled = True
                    error = error_for_exception(exc, method=method, url=url, lane=lane_name)
                    self._record(breaker, error)
                    raise error from exc
                except asyncio.CancelledError:
                    abandoned_at = on_wire_since
                    raise
                rate = parse_rate_headers(response.headers)
                status = response.status_code
                content = b"" if body_sink is not None and 200 <= status < 300 else response.content

                if status == 304 and cached is not None:
                    self._limiter.settle(reservation, rate)
                    settled = True
                    self._count("api_requests_saved")
                    self._record(breaker, None)
                    merged = httpx.Headers(cached.headers)
                    merged.update(response.headers)
                    return Response(cached.status, _parse_body(cached.body), merged, True, url, cached.body)

                if status < 400:
                    self._limiter.settle(reservation, rate, ok_without_headers=True)
                    settled = True
                    self._record(breaker, None)
                    if cache is not None and key is not None and status == 200:
                        await self._store(cache, key, response, content)
                    return Response(status, _parse_body(content), response.headers, False, url, content)

                if status == 401 and self._auth is not None and not refreshed:
                    # an App installation token can be revoked or expire early: get a new one, once
                    self._limiter.settle(reservation, rate)
                    settled = True
                    refreshed = True
                    await self._current_token(refresh=True)
                    continue
                error = error_for_response(
                    status, response.headers, content, method=method, url=url, lane=lane_name,
                    api_url=self.api_url, had_token=self.authenticated,
                    now=self._clock(),
                )
                if isinstance(error, SecondaryRateLimitError):
                    self._limiter.settle(reservation, rate)
                    settled = True
                    self._count("secondary_limited")
                    pause = self._lanes.get(lane_name).secondary_limit(
                        error.retry_after, sent_at, reason=f"secondary rate limit ({status})")
                    if error.retry_after is None:
                        error.retry_after = pause
                    log.warning("every lane paused %.1fs after a secondary rate limit on %s %s (lane %s)",
                                pause, method, http_request.url.path, lane_name)
                elif isinstance(error, RateLimitError):
                    self._limiter.refused(reservation, rate)
                    settled = True
                    self._count("rate_limited")
                    log.info("primary rate limit on %s; waiting for its reset", resource)
                else:
                    self._limiter.settle(reservation, rate)
                    settled = True
                self._record(breaker, error)
                if isinstance(error, RateLimitError) and waits < self._limit_retries:
                    waits += 1
                    self._count("retries_after_wait")
                    continue
                raise error
            finally:
                if held:          # booked by now: a secondary limit has become the token's pause
                    self._lanes.pause.release()
                if not settled:   # cancelled mid-flight: give the reservation back
                    self._limiter.settle(reservation, None)
                lane_obj.record_done()
                self._release_slot(abandoned_at)

    async def _current_token(self, *, refresh: bool) -> str | None:
        if self._auth is None:
            return self._token
        return await self._auth.token(self._http, self.api_url, refresh=refresh)

    def _release_slot(self, abandoned_at: float | None) -> None:
        """Free a concurrency slot; one whose request we gave up on stays taken until the
        server must have finished it, so abandoned requests still count against concurrency."""
        if abandoned_at is None:
            self._slots.release()
            return
        hold = abandoned_at + self.server_timeout_s - asyncio.get_running_loop().time()
        if hold <= 0:
            self._slots.release()
            return

        async def release_later() -> None:
            try:
                await asyncio.sleep(hold)
            finally:
                self._slots.release()

        task = asyncio.get_running_loop().create_task(release_later())
        self._held_slots.add(task)
        task.add_done_callback(self._held_slots.discard)

    async def _admit(self, lane_name: str, resource: str, mutation: bool,
                     creates_content: bool) -> tuple[Reservation, float]:
        lane = self._lanes.get(lane_name)
        if not mutation:
            return await self._admit_now(lane, resource, mutation, creates_content)
        async with lane.mutation_lock:
            return await self._admit_now(lane, resource, mutation, creates_content)

    async def _admit_now(self, lane: Any, resource: str, mutation: bool,
                         creates_content: bool) -> tuple[Reservation, float]:
        while True:
            await lane.wait_while_paused()
            if creates_content:
                await lane.wait_for_content_budget()
            points = self._points.get("graphql" if resource == "graphql" else "rest")
            if points is not None:
                await points.acquire(5 if mutation else 1)
            reservation = await self._limiter.acquire(resource)
            try:
                if mutation:
                    await lane.wait_for_mutation_slot()
                await self._slots.acquire()
            except BaseException:
                self._limiter.settle(reservation, None)
                raise
            if lane.paused():   # a request of the token was refused while we queued
                self._limiter.settle(reservation, None)
                self._slots.release()
                continue
            return reservation, lane.record_sent(mutation=mutation, creates_content=creates_content)

    async def _wait_for_breaker(self, breaker: Any) -> None:
        while breaker is not None and getattr(breaker, "state", None) == "open":
            next_probe_at = breaker.view().next_probe_at
            wait = (next_probe_at - self._clock()) if next_probe_at is not None else 0.0
            await self._sleep(min(max(wait, 0.01), 1.0))

    @staticmethod
    def _record(breaker: Any, error: BatchProcessingError | None) -> None:
        if breaker is None:
            return
        if error is None:
            breaker.record_success()
        else:
            breaker.record_failure(error.error_class)

    @staticmethod
    async def _store(cache: HttpCache, key: str, response: httpx.Response, content: bytes) -> None:
        etag = response.headers.get("etag")
        last_modified = response.headers.get("last-modified")
        if not etag and not last_modified:
            return
        kept = {name: response.headers[name] for name in CACHED_HEADERS if name in response.headers}
        await cache.put(key, CachedEntry(etag, last_modified, response.status_code, content, kept))

    # -- REST helpers -----------------------------------------------------------------

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None, lane: str = "read") -> Any:
        return (await self.request("GET", path, params=params, lane=lane)).data

    async def paginate(self, path: str, params: Mapping[str, Any] | None = None,
                       lane: str = "read") -> AsyncIterator[dict]:
        """Every item of a listing, following ``Link: rel="next"`` (100 per page).

        Search answers (``{"items": [...]}``) and wrapped listings
        (``{"repositories": [...]}``) are unwrapped.
        """
        query = dict(params or {})
        query.setdefault("per_page", 100)
        url: str | None = path
        first = True
        while url:
            response = await self.request("GET", url, params=query if first else None, lane=lane)
            first = False
            data = response.data
            if isinstance(data, dict):
                data = next((data[k] for k in ("items", "repositories", "workflow_runs") if k in data), [])
            for item in data or []:
                yield item
            url = response.links.get("next")

    async def list_org_repos(self, org: str) -> list[dict]:
        return [repo async for repo in self.paginate(f"/orgs/{quote(org, safe='')}/repos", {"type": "all"})]

    async def list_user_repos(self, user: str) -> list[dict]:
        return [repo async for repo in self.paginate(f"/users/{quote(user, safe='')}/repos", {"type": "owner"})]

    async def get_repo(self, owner: str, repo: str) -> dict:
        return await self.get_json(self._repo_path(owner, repo))

    async def get_tree(self, owner: str, repo: str, ref: str, recursive: bool = True) -> list[dict]:
        """Every entry of a tree (paths from its root).

        A recursive listing that GitHub truncated is completed by walking the
        tree: each subdirectory is listed recursively (one request when it
        fits) and, when that is truncated too, one level at a time.
        """
        base = f"{self._repo_path(owner, repo)}/git/trees/"
        first = await self.get_json(base + quote(ref, safe="/"), {"recursive": 1} if recursive else None)
        if not recursive or not first.get("truncated"):
            return list(first.get("tree", []))
        entries: dict[str, dict] = {}
        pending: list[tuple[str, str, bool]] = [("", quote(ref, safe="/"), False)]
        while pending:
            prefix, sha, try_recursive = pending.pop()
            if try_recursive:
                listing = await self.get_json(base + sha, {"recursive": 1})
                if not listing.get("truncated"):
                    for entry in listing.get("tree", []):
                        entries.setdefault(prefix + entry["path"], {**entry, "path": prefix + entry["path"]})
                    continue
            listing = await self.get_json(base + sha)
            for entry in listing.get("tree", []):
                path = prefix + entry["path"]
                entries.setdefault(path, {**entry, "path": path})
                if entry.get("type") == "tree":
                    pending.append((path + "/", entry["sha"], True))
        return list(entries.values())

    async def get_blob(self, owner: str, repo: str, sha: str) -> bytes:
        data = await self.get_json(f"{self._repo_path(owner, repo)}/git/blobs/{quote(sha, safe='')}")
        content = data.get("content") or ""
        if data.get("encoding") == "base64":
            return base64.b64decode(content)
        return content.encode("utf-8")

    @asynccontextmanager
    async def download(self, path_or_url: str, *, lane: str = "read", max_bytes: int | None = None,
                       spool_dir: str | None = None) -> AsyncIterator[IO[bytes]]:
        """The raw body of a GET (``Accept: application/vnd.github.raw+json``: a blob's or a
        file's bytes, not base64 inside JSON), streamed into a temporary file positioned at 0.

        The file is a ``SpooledTemporaryFile``: in memory up to 256 KiB, then an unnamed
        file (mode 0600, in ``spool_dir`` or the system's temporary directory); it is closed
        and gone when the ``async with`` block ends, also when the block raises. A large
        blob thus never sits in memory whole, nor three times (JSON body, base64, bytes).
        The request goes through :meth:`request` (pacing, limits, breaker and error classes
        as for any GET), uncached: a body is kept once, in the file. A body cut short
        raises a :class:`~engine.errors.NetworkError` (transient), a body above
        ``max_bytes`` a :class:`BodyTooLarge` naming its size.
        """
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES, dir=spool_dir)  # noqa: SIM115
        try:
            async def into_spool(response: httpx.Response) -> None:
                announced = int(response.headers.get("content-length") or 0)
                if max_bytes is not None and announced > max_bytes:
                    raise BodyTooLarge(f"body of {announced:,} bytes is above the {max_bytes:,} allowed",
                                       announced, status_code=response.status_code, lane=lane)
                spool.seek(0)
                spool.truncate()
                received = 0
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if max_bytes is not None and received > max_bytes:
                        raise BodyTooLarge(f"body of more than {max_bytes:,} bytes (stopped reading at "
                                           f"{received:,})", received, status_code=response.status_code, lane=lane)
                    spool.write(chunk)

            await self.request("GET", path_or_url, lane=lane, conditional=False,
                               headers={"Accept": RAW_MEDIA_TYPE}, body_sink=into_spool)
            spool.seek(0)
            yield spool
        finally:
            spool.close()

    async def create_issue(self, owner: str, repo: str, title: str, body: str | None = None,
                           **fields: Any) -> dict:
        payload = {"title": title, **({"body": body} if body is not None else {}), **fields}
        response = await self.request("POST", f"{self._repo_path(owner, repo)}/issues", json=payload, lane="write")
        return response.data

    async def update_issue(self, owner: str, repo: str, number: int, **fields: Any) -> dict:
        response = await self.request("PATCH", f"{self._repo_path(owner, repo)}/issues/{int(number)}",
                                      json=fields, lane="write")
        return response.data

    async def list_issues(self, owner: str, repo: str, *, state: str = "open", **params: Any) -> list[dict]:
        query = {"state": state, **params}
        return [issue async for issue in self.paginate(f"{self._repo_path(owner, repo)}/issues", query)]

    async def search_issues(self, query: str, **params: Any) -> list[dict]:
        return [item async for item in self.paginate("/search/issues", {"q": query, **params}, lane="search")]

    @staticmethod
    def _repo_path(owner: str, repo: str) -> str:
        return f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}"

    # -- GraphQL ----------------------------------------------------------------------

    async def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict:
        """Run a GraphQL query; returns ``{"data": ..., "errors": [field errors]}``.

        Errors about the whole query (no ``path``, or no ``data`` at all) raise
        :class:`~engine.errors.ClientError`; errors of single fields (a
        repository that does not exist: ``NOT_FOUND``) come back in the list so
        one missing alias does not sink a query of fifty. GraphQL's primary
        limit (a 200 with ``type: RATE_LIMITED``) waits for the reset and
        retries like a REST refusal. Mutations go through the write lane.
        """
        is_mutation = query.lstrip().startswith("mutation")
        lane = "write" if is_mutation else "graphql"
        body = {"query": query, "variables": dict(variables or {})}
        waits = 0
        while True:
            response = await self.request("POST", self.graphql_url, json=body, lane=lane,
                                          resource="graphql", conditional=False)
            payload = response.data if isinstance(response.data, dict) else {}
            errors = [e for e in payload.get("errors") or [] if isinstance(e, dict)]
            if any(_is_graphql_rate_limit(e) for e in errors):
                self._limiter.refused(None, parse_rate_headers(response.headers))
                self._count("rate_limited")
                if waits < self._limit_retries:
                    waits += 1
                    self._count("retries_after_wait")
                    continue
                rate = parse_rate_headers(response.headers)
                raise RateLimitError("GitHub GraphQL rate limit exhausted",
                                     reset_time=rate.reset if rate else None, lane=lane, status_code=200)
            whole_query = [e for e in errors if not e.get("path")]
            if whole_query or payload.get("data") is None:
                messages = "; ".join(str(e.get("message", "")) for e in (whole_query or errors)) or "no data"
                raise ClientError(f"GitHub GraphQL query failed: {messages[:300]}", status_code=response.status,
                                  lane=lane)
            return {"data": payload["data"], "errors": errors}

    async def get_file_texts_graphql(
        self, requests: list[tuple[str, str, str]]
    ) -> list[str | None | Exception]:
        """The text of many files in one query: ``(owner, repo, "REF:path")`` each.

        Per request: the text; None when the file does not exist or is binary;
        a :class:`~engine.errors.ClientError` when the repository is missing or
        forbidden. Callers keep a query to a few dozen files (GitHub caps a
        query's nodes and its cost grows with it).
        """
        if not requests:
            return []
        declarations, fields_, variables = [], [], {}
        for i, (owner, repo, expression) in enumerate(requests):
            declarations.append(f"$o{i}: String!, $n{i}: String!, $e{i}: String!")
            fields_.append(f"f{i}: repository(owner: $o{i}, name: $n{i}) "
                           f"{{ object(expression: $e{i}) {{ ... on Blob {{ text }} }} }}")
            variables.update({f"o{i}": owner, f"n{i}": repo, f"e{i}": expression})
        query = f"query({', '.join(declarations)}) {{ {' '.join(fields_)} }}"
        result = await self.graphql(query, variables)
        data = result["data"]
        field_errors: dict[str, Any] = {}  # the first error of each aliased field
        for error in result["errors"]:
            field_errors.setdefault(str(error["path"][0]), error)
        out: list[str | None | Exception] = []
        for i, (owner, repo, expression) in enumerate(requests):
            alias = f"f{i}"
            error = field_errors.get(alias)
            node = data.get(alias)
            if error is not None and node is None:
                status = 404 if error.get("type") == "NOT_FOUND" else 403 if error.get("type") == "FORBIDDEN" else None
                out.append(ClientError(f"GitHub GraphQL: {owner}/{repo} {expression}: {error.get('message', '')}",
                                       status_code=status, lane="graphql"))
            elif node is None:
                out.append(ClientError(f"GitHub GraphQL: repository {owner}/{repo} not found",
                                       status_code=404, lane="graphql"))
            else:
                blob = node.get("object")
                out.append(blob.get("text") if isinstance(blob, dict) else None)
        return out
