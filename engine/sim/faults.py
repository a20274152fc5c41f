"""Fault injection: latency, 5xx, timeouts, dropped connections, bursts.

Why it is built this way:

* Every decision comes from seeded ``random.Random`` streams (one for latency,
  one for failures), drawn once per request in arrival order, so a sequential
  test run injects exactly the same faults every time and can assert counts
  rather than timings. Changing the latency does not shift which requests fail.
* A dropped connection has to look like one to the client. Through uvicorn the
  response is started and then the app raises: uvicorn closes the socket
  mid-response and the client reads an incomplete message (a transport error,
  like a reset). Through ``httpx.ASGITransport`` the same exception reaches the
  client unchanged. No 500 is ever sent for it.
* Bursts are wall-clock windows (every ``every_s`` seconds, ``duration_s`` long)
  counted from the app's start, during which the 5xx rate is the burst's.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.sim.config import FaultConfig

SERVER_ERROR_STATUSES = (500, 502, 503)
SERVER_ERROR_BODIES = {
    500: {"message": "Server Error"},
    502: {"message": "Server Error"},
    503: {"message": "Service Unavailable"},
    504: {"message": "We couldn't respond to your request in time. Sorry about that. "
                     "Please try resubmitting your request and contact us if the problem persists."},
}


class SimulatedConnectionReset(ConnectionResetError):
    """Raised by the app to drop a connection on purpose."""


@dataclass(frozen=True, slots=True)
class FaultDecision:
    kind: str           # "error" | "timeout" | "reset"
    status: int = 0     # for "error"


class ResetResponse(Response):
    """A response that starts, then dies: the connection is dropped. ``status_code`` and the
    headers the pipeline stamps are for the simulator's books; what goes out is fixed below."""

    def __init__(self, status_code: int = 200) -> None:
        super().__init__(status_code=status_code)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json; charset=utf-8"),
                                (b"content-length", b"4096")]})
        await send({"type": "http.response.body", "body": b'{"', "more_body": True})
        raise SimulatedConnectionReset("simulated connection reset")


class FaultInjector:
    def __init__(self, faults: FaultConfig, seed: int, started_at: float) -> None:
        self.faults = faults
        self.started_at = started_at
        self._seed = seed
        self.reseed()

    def reseed(self) -> None:
        self._latency_rng = random.Random(f"{self._seed}:latency")
        self._failure_rng = random.Random(f"{self._seed}:failures")
        self._admitted = 0

    def secondary_block_due(self) -> bool:
        """Called once per request reaching admission: whether it is one ``secondary_block_at`` names."""
        self._admitted += 1
        return self._admitted in self.faults.secondary_block_at

    def latency_s(self) -> float:
        f = self.faults
        if f.latency is None:
            return f.latency_ms / 1000
        d, rng = f.latency, self._latency_rng
        if d.dist == "normal":
            ms = rng.gauss(d.mean_ms, d.sd_ms)
        elif d.dist == "uniform":
            half = d.sd_ms * math.sqrt(3)   # a uniform on [m-h, m+h] has sd h/sqrt(3)
            ms = rng.uniform(d.mean_ms - half, d.mean_ms + half)
        elif d.mean_ms <= 0:
            ms = 0.0
        else:  # lognormal with the requested mean and sd of the result, not of its log
            sigma2 = math.log(1 + (d.sd_ms / d.mean_ms) ** 2)
            ms = rng.lognormvariate(math.log(d.mean_ms) - sigma2 / 2, math.sqrt(sigma2))
        return max(0.0, ms) / 1000

    def in_burst(self, now: float) -> bool:
        b = self.faults.bursts
        return b is not None and (now - self.started_at) % b.every_s < b.duration_s

    def decide(self, now: float) -> FaultDecision | None:
        """One draw per request: reset, timeout, 5xx, or nothing."""
        f = self.faults
        error_rate = f.error_rate
        if self.in_burst(now):
            assert f.bursts is not None
            error_rate = max(error_rate, f.bursts.error_rate)
        if not (f.reset_rate or f.timeout_rate or error_rate):
            return None
        u = self._failure_rng.random()
        pick = self._failure_rng.randrange(len(SERVER_ERROR_STATUSES))
        if u < f.reset_rate:
            return FaultDecision("reset")
        if u < f.reset_rate + f.timeout_rate:
            return FaultDecision("timeout", f.timeout_status or 0)
        if u < f.reset_rate + f.timeout_rate + error_rate:
            return FaultDecision("error", SERVER_ERROR_STATUSES[pick])
        return None

    async def hang(self) -> None:
        """A timeout: wait ``hang_s``; with no ``timeout_status``, never answer."""
        await asyncio.sleep(self.faults.hang_s)
        if self.faults.timeout_status is None:
            raise SimulatedConnectionReset("simulated timeout: dropped without an answer")


class FailRequests:
    """ASGI wrapper: requests whose path and query contain ``match`` are answered with
    GitHub's 5xx body, the first ``times`` times (``None``: always), before the simulator
    sees them. For a fault at one exact place (page 3 of a listing, one blob), where the
    seeded rates of :class:`FaultInjector` pick their victims by arrival order.
    """

    def __init__(self, app: ASGIApp, match: str, *, status: int = 500, times: int | None = None) -> None:
        self.app, self.match, self.status, self.times = app, match, status, times
        self.failed = 0
        self.state = getattr(app, "state", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target = scope.get("path", "") + "?" + scope.get("query_string", b"").decode("latin-1")
            if self.match in target and (self.times is None or self.failed < self.times):
                self.failed += 1
                body = json.dumps(SERVER_ERROR_BODIES.get(self.status, {"message": "Server Error"})).encode()
                await send({"type": "http.response.start", "status": self.status,
                            "headers": [(b"content-type", b"application/json; charset=utf-8"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
