"""Which HTTP transport carries the client's requests.

The client speaks httpx (one ``AsyncClient``, one connection pool, reused for
the whole run), but not over httpx's own pool by default: httpx 0.28's pool
collapses past ~20 concurrent connections. Measured on this project's machine
against uvicorn at 50 ms latency, plain httpx reached 0.21-0.33 of the
physical ceiling (concurrency ÷ latency) at concurrency 50 and ~1,000 req/s at
zero latency, against 0.94 and ~3,300 req/s with the aiohttp transport of
``httpx-aiohttp``; encode/httpx#3215 is the open upstream report. So:

* ``"aiohttp"`` (default): :class:`httpx_aiohttp.AiohttpTransport`, an
  aiohttp connection pool behind httpx's API;
* ``"httpx"``: httpx's own ``AsyncHTTPTransport``, for comparison or where
  aiohttp misbehaves;
* any ``httpx.AsyncBaseTransport`` can be injected instead (tests mount the
  simulator in-process with ``httpx.ASGITransport``).

``bench/client.py`` measures both on the current machine.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import httpx

if TYPE_CHECKING:
    from aiohttp import ClientSession

TRANSPORTS = ("aiohttp", "httpx")
#: status lines that may open a secondary-limit refusal (what the client holds its lanes on)
REFUSAL_STATUS_LINES = (b"403", b"429")


def _session_with_early_status(limits: httpx.Limits, on_refusal_status: Callable[[], None]) -> ClientSession:
    """An aiohttp session whose connections call ``on_refusal_status()`` the moment a 403/429
    status line is read off the socket.

    Why: between those bytes arriving and the requesting task seeing the response, the event
    loop runs other tasks (several turns on a loaded machine: 5-11 ms measured), and they
    would send into a secondary block the client has already been told of. aiohttp has no
    public hook at that point, so the connector's protocol factory (``_factory``, set in
    ``BaseConnector.__init__``) is replaced by a subclass of its ``ResponseHandler``.
    """
    import aiohttp
    from aiohttp.client_proto import ResponseHandler

    class EarlyStatusHandler(ResponseHandler):
        def data_received(self, data: bytes) -> None:
            # a response's first chunk starts with its status line (HTTP/1.1, no pipelining)
            if data[:5] == b"HTTP/" and data[9:12] in REFUSAL_STATUS_LINES:
                on_refusal_status()
            super().data_received(data)

    connector = aiohttp.TCPConnector(limit=limits.max_connections or 0, keepalive_timeout=limits.keepalive_expiry,
                                     ssl=httpx.create_ssl_context())   # as httpx-aiohttp's own session
    factory = functools.partial(EarlyStatusHandler, loop=asyncio.get_running_loop())
    connector._factory = cast("functools.partial[ResponseHandler]", factory)
    return aiohttp.ClientSession(connector=connector)


def make_transport(kind: str = "aiohttp", *, max_connections: int = 100,
                   on_refusal_status: Callable[[], None] | None = None) -> httpx.AsyncBaseTransport:
    """A transport of ``kind`` with a pool of ``max_connections`` kept-alive connections.

    The pool size doubles as a concurrency cap: GitHub allows at most 100
    concurrent requests per token before a secondary limit. ``on_refusal_status``
    (aiohttp only) is called as soon as a 403/429 status line arrives.
    """
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                          keepalive_expiry=30.0)
    if kind == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        if on_refusal_status is None:
            return AiohttpTransport(limits=limits)
        hook = on_refusal_status
        # made on first use, inside the running loop (an aiohttp session must be)
        return AiohttpTransport(limits=limits, client=lambda: _session_with_early_status(limits, hook))
    if kind == "httpx":
        return httpx.AsyncHTTPTransport(limits=limits)
    raise ValueError(f"github.transport must be one of {', '.join(TRANSPORTS)}, got {kind!r}")
