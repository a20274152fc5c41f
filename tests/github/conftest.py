"""Shared helpers: a fake clock, and a tiny recording GitHub stand-in for client tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

EPOCH = 1_700_000_000.0


class FakeClock:
    """An epoch clock that only moves when someone sleeps on it."""

    def __init__(self, start: float = EPOCH) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass
class Arrival:
    at: float
    method: str
    path: str
    query: str
    headers: dict[str, str]


@dataclass
class RecordingApp:
    """A Starlette app whose routes the test supplies; it records every arrival."""

    arrivals: list[Arrival] = field(default_factory=list)
    handlers: dict[str, Callable[[Request], Awaitable[Response]]] = field(default_factory=dict)

    def route(self, path: str):
        def register(fn):
            self.handlers[path] = fn
            return fn
        return register

    def app(self) -> Starlette:
        async def dispatch(request: Request) -> Response:
            self.arrivals.append(Arrival(time.monotonic(), request.method, request.url.path,
                                         request.url.query, dict(request.headers)))
            handler = self.handlers.get(request.url.path)
            if handler is None:
                return JSONResponse({"message": "Not Found"}, status_code=404)
            return await handler(request)

        return Starlette(routes=[Route("/{path:path}", dispatch, methods=["GET", "POST", "PATCH", "PUT", "DELETE"])])


def rate_headers(limit: int = 10_000_000, remaining: int | None = None, reset: float | None = None,
                 resource: str = "core") -> dict[str, str]:
    """Rate headers; by default a bucket so large that pacing never holds a test back."""
    reset = time.time() + 3600 if reset is None else reset
    remaining = limit - 1 if remaining is None else remaining
    return {
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-used": str(limit - remaining),
        "x-ratelimit-reset": f"{reset:.3f}",
        "x-ratelimit-resource": resource,
    }


@pytest.fixture
def recorder() -> RecordingApp:
    return RecordingApp()


@pytest.fixture
def headers_for() -> Callable[..., dict[str, str]]:
    return rate_headers


def run_in_virtual_time(main: Callable[[], Awaitable[object]]) -> object:
    """Run ``main()`` on an event loop whose clock jumps ahead whenever every task waits on a
    timer (looptime): an hour of scaled GitHub time costs milliseconds, and the schedule does not
    depend on how loaded the machine is. Give the code under test :func:`loop_epoch` as its clock."""
    import looptime

    loop = looptime.new_event_loop(start=0)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def loop_epoch() -> float:
    """Epoch seconds on the running loop's clock (virtual under :func:`run_in_virtual_time`)."""
    return EPOCH + asyncio.get_running_loop().time()
