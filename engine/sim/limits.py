"""GitHub's primary and secondary rate limits, kept per token (or client IP).

Why it is built this way:

* Primary limits are fixed windows that start with the first request that
  counts, like GitHub's (``x-ratelimit-reset`` is an hour after the window
  opened, not a rolling hour). Peeking (``GET /rate_limit``, headers of a
  refused request) never opens a window.
* A request reserves its point when it is admitted, before it does any work:
  otherwise 100 concurrent requests could all see ``remaining: 1`` and overdraw
  the bucket. A 304 gets its point back (GitHub does not charge authenticated
  conditional hits).
* Secondary limits cannot be observed by a client (GitHub says so), so a
  *violation* is only a request its client provably sent after it was told:
  one that reaches an active secondary block **on a connection that already
  carried a refusal of that block** (HTTP/1.1 is serial: the client had read
  that refusal before it wrote the next request there; in-process, where there
  is one connection, any request after a refusal was delivered), or one sent
  while the primary bucket was already announced empty. Tripping a limit is not
  one. Other requests a block refuses are counted apart, never dropped:
  ``in_flight_at_block`` when the server had read them before any refusal of
  the block was written (they were on the wire before the client could know),
  ``after_refusal_elsewhere`` when read after a refusal went out on another
  connection: the client may have sent them before its process had read that
  refusal off the socket (measured on a loaded machine: a request written 8 ms
  after the refusal, 6 ms before the client process read it), or may not; the
  server cannot tell, so they are shown, not hidden. A request's arrival is when
  the loopback server read its head off the socket (:mod:`engine.sim.server`);
  in-process, when the app runs it. Each block is a :class:`Block`.
* Whether a secondary refusal is 403 or 429 and whether it carries
  ``retry-after`` is drawn from ``Random(f"{seed}:{n}")`` for the n-th refusal,
  so a test run is reproducible while clients still see both forms.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from engine.sim.config import SimConfig

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HOUR = 3600.0
MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request counts against: a token's user, or the client IP."""

    key: str                    # a digest of the token (never the token) or "ip:<addr>"
    user_id: int | None
    ip: str
    core_limit: int | None = None   # a GitHub App installation's hourly limit (core and GraphQL)

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def login(self) -> str:
        return f"sim-user-{self.user_id}" if self.user_id is not None else "anonymous"


def identity_for(token: str | None, ip: str) -> Identity:
    if not token:
        return Identity(key=f"ip:{ip}", user_id=None, ip=ip)
    digest = hashlib.sha256(token.encode()).digest()
    return Identity(key="tok:" + digest[:12].hex(), user_id=10_000_000 + int.from_bytes(digest[:4]) % 90_000_000,
                    ip=ip)


@dataclass(slots=True)
class FixedWindow:
    """A counter that empties ``seconds`` after the first unit was taken."""

    limit: int
    seconds: float
    used: int = 0
    reset_at: float | None = None

    def _live(self, now: float) -> bool:
        return self.reset_at is not None and now < self.reset_at

    def remaining(self, now: float) -> int:
        return max(0, self.limit - self.used) if self._live(now) else self.limit

    def used_now(self, now: float) -> int:
        return self.used if self._live(now) else 0

    def reset_time(self, now: float) -> float:
        if self.reset_at is not None and self._live(now):
            return self.reset_at
        return now + self.seconds

    def take(self, now: float, amount: int = 1) -> None:
        if not self._live(now):
            self.used, self.reset_at = 0, now + self.seconds
        self.used += amount

    def give_back(self, now: float, amount: int = 1) -> None:
        if self._live(now):
            self.used = max(0, self.used - amount)

    def fits(self, now: float, amount: int) -> bool:
        return self.used_now(now) + amount <= self.limit


@dataclass(slots=True)
class RateSnapshot:
    """What the ``x-ratelimit-*`` headers of one response say."""

    resource: str
    limit: int
    remaining: int
    used: int
    reset: float


@dataclass(slots=True)
class Block:
    """One secondary block of a token: refused until ``until``; known to the client from
    ``delivered_at``, when the first refusal of this block had been written to it."""

    until: float = 0.0
    started_at: float = 0.0
    delivered_at: float | None = None
    told: set[str] = field(default_factory=set)    # connections that carried a refusal of it

    def active(self, now: float) -> bool:
        return now < self.until

    def known(self, connection: str) -> bool:
        """Whether a request on ``connection`` was provably sent after its client was told: a
        refusal of this block went out on that same connection before it (HTTP/1.1 is serial:
        the client read that refusal before it wrote the next request there)."""
        return connection in self.told

    def told_elsewhere(self, arrived: float) -> bool:
        return self.delivered_at is not None and self.delivered_at <= arrived

    def delivered(self, clock: Callable[[], float], connection: str) -> None:
        """A refusal of this block has been sent out in full on ``connection``."""
        if self.delivered_at is None:
            self.delivered_at = clock()
        self.told.add(connection)


@dataclass(slots=True)
class SecondaryState:
    rest_points: FixedWindow
    graphql_points: FixedWindow
    content_minute: FixedWindow
    content_hour: FixedWindow
    in_flight: int = 0
    block: Block = field(default_factory=Block)           # every request refused while active
    content_block: Block = field(default_factory=Block)   # content creation refused while active


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: str                 # "primary" | "secondary"
    reason: str               # bucket_empty | blocked | concurrency | points | content_minute | content_hour | forced
    violation: bool           # the client should have known better
    status: int
    retry_after: float | None = None
    content: bool = False     # a content-creation block (GitHub words it differently)
    block: Block | None = None   # the secondary block this refusal belongs to (mark its delivery)
    told_elsewhere: bool = False  # read after a refusal of its block went out on another connection

    @property
    def in_flight_at_block(self) -> bool:
        """Refused by a block the client could not yet know of (not a violation)."""
        return self.kind == "secondary" and self.reason == "blocked" and not self.violation \
            and not self.told_elsewhere


@dataclass
class RateLimiter:
    config: SimConfig
    _primary: dict[tuple[str, str], FixedWindow] = field(default_factory=dict)
    _secondary: dict[str, SecondaryState] = field(default_factory=dict)
    in_flight_total: int = 0
    peak_concurrency: int = 0
    _refusals: int = 0

    # -- primary ----------------------------------------------------------
    def limit_for(self, ident: Identity, resource: str) -> tuple[int, float]:
        cfg = self.config
        if resource == "search":
            # GitHub: 30 searches a minute with a token, 10 without
            return (cfg.search_limit if ident.authenticated else max(1, cfg.search_limit // 3)), cfg.window(MINUTE)
        if ident.core_limit is not None and resource in ("core", "graphql"):
            return ident.core_limit, cfg.window(HOUR)
        if resource == "graphql":
            return cfg.graphql_limit, cfg.window(HOUR)
        return (cfg.core_limit if ident.authenticated else cfg.unauthenticated_limit), cfg.window(HOUR)

    def bucket(self, ident: Identity, resource: str) -> FixedWindow:
        key = (ident.key, resource)
        if key not in self._primary:
            limit, seconds = self.limit_for(ident, resource)
            self._primary[key] = FixedWindow(limit, seconds)
        return self._primary[key]

    def snapshot(self, ident: Identity, resource: str, now: float) -> RateSnapshot:
        b = self.bucket(ident, resource)
        return RateSnapshot(resource, b.limit, b.remaining(now), b.used_now(now), b.reset_time(now))

    # -- concurrency ------------------------------------------------------
    def _state(self, ident: Identity) -> SecondaryState:
        if ident.key not in self._secondary:
            cfg = self.config
            self._secondary[ident.key] = SecondaryState(
                rest_points=FixedWindow(cfg.secondary_points_per_minute, cfg.window(MINUTE)),
                graphql_points=FixedWindow(cfg.secondary_graphql_points_per_minute, cfg.window(MINUTE)),
                content_minute=FixedWindow(cfg.content_create_per_minute, cfg.window(MINUTE)),
                content_hour=FixedWindow(cfg.content_create_per_hour, cfg.window(HOUR)),
            )
        return self._secondary[ident.key]

    def enter(self, ident: Identity) -> None:
        self._state(ident).in_flight += 1
        self.in_flight_total += 1
        self.peak_concurrency = max(self.peak_concurrency, self.in_flight_total)

    def leave(self, ident: Identity) -> None:
        self._state(ident).in_flight -= 1
        self.in_flight_total -= 1

    # -- admission --------------------------------------------------------
    def admit(self, ident: Identity, method: str, resource: str | None, now: float,
              creates_content: bool = False, force_block: bool = False,
              arrived: float | None = None, connection: str = "") -> Refusal | None:
        """Check every limit for a request that has already ``enter``-ed; ``force_block``
        (a fault) trips a secondary block (reason ``forced``) unless one is already active.
        ``arrived`` (default ``now``) is when the server read the request off the wire and
        ``connection`` the connection it came on (see :class:`Block` and :class:`Refusal`).

        On success the request's secondary points, its content-creation unit and
        (for REST resources) its primary point are taken. GraphQL's primary cost
        is only known once the query is parsed: the GraphQL handler takes it.
        """
        st = self._state(ident)
        cfg = self.config
        arrived = now if arrived is None else arrived
        for block, content in ((st.block, False), (st.content_block, True)):
            if block.active(now) and (creates_content or not content):
                refusal = self._secondary_refusal("blocked", block, now, violation=block.known(connection),
                                                  content=content)
                if not refusal.violation and block.told_elsewhere(arrived):
                    refusal = replace(refusal, told_elsewhere=True)
                return refusal
        if force_block:
            return self._trip(st, "forced", now)
        if resource is not None:
            bucket = self.bucket(ident, resource)
            if bucket.remaining(now) <= 0:
                return Refusal("primary", "bucket_empty", violation=True, status=cfg.primary_status)
        if st.in_flight > cfg.secondary_max_concurrent:
            return self._trip(st, "concurrency", now)
        points_window = st.graphql_points if resource == "graphql" else st.rest_points
        # GitHub's secondary points: a REST GET 1, a REST write 5; a GraphQL query 1 (it is a
        # POST, but only mutations cost 5, and this schema has none)
        points = 1 if method in SAFE_METHODS or resource == "graphql" else 5
        if not points_window.fits(now, points):
            return self._trip(st, "points", now)
        if creates_content:
            if not st.content_minute.fits(now, 1):
                return self._trip(st, "content_minute", now, content=True)
            if not st.content_hour.fits(now, 1):
                return self._trip(st, "content_hour", now, content=True)
            st.content_minute.take(now)
            st.content_hour.take(now)
        points_window.take(now, points)
        if resource is not None and resource != "graphql":
            self.bucket(ident, resource).take(now)
        return None

    def _trip(self, st: SecondaryState, reason: str, now: float, content: bool = False) -> Refusal:
        block = Block(until=now + self.config.window(self.config.secondary_penalty_s), started_at=now)
        if content:
            st.content_block = block
        else:
            st.block = block
        return self._secondary_refusal(reason, block, now, violation=False, content=content)

    def _secondary_refusal(self, reason: str, block: Block, now: float, *, violation: bool,
                           content: bool = False) -> Refusal:
        until = block.until
        cfg = self.config
        self._refusals += 1
        draw = random.Random(f"{cfg.seed}:{self._refusals}")
        with_retry_after = {"always": True, "never": False}.get(cfg.secondary_retry_after, draw.random() < 0.5)
        status = {"403": 403, "429": 429}.get(cfg.secondary_status, 403 if draw.random() < 0.5 else 429)
        wait = max(0.0, until - now)
        if cfg.time_scale == 1.0:
            wait = float(math.ceil(wait))
        return Refusal("secondary", reason, violation=violation, status=status,
                       retry_after=wait if with_retry_after else None, content=content, block=block)

    def reset(self) -> None:
        """Refill every bucket and lift every block (``POST /_sim/reset``); keep in-flight counts."""
        self._primary.clear()
        for st in self._secondary.values():
            for window in (st.rest_points, st.graphql_points, st.content_minute, st.content_hour):
                window.used, window.reset_at = 0, None
            st.block, st.content_block = Block(), Block()
        self.peak_concurrency = self.in_flight_total
        self._refusals = 0
