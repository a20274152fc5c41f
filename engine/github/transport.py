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

import httpx

TRANSPORTS = ("aiohttp", "httpx")


def make_transport(kind: str = "aiohttp", *, max_connections: int = 100) -> httpx.AsyncBaseTransport:
    """A transport of ``kind`` with a pool of ``max_connections`` kept-alive connections.

    The pool size doubles as a concurrency cap: GitHub allows at most 100
    concurrent requests per token before a secondary limit.
    """
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                          keepalive_expiry=30.0)
    if kind == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        return AiohttpTransport(limits=limits)
    if kind == "httpx":
        return httpx.AsyncHTTPTransport(limits=limits)
    raise ValueError(f"github.transport must be one of {', '.join(TRANSPORTS)}, got {kind!r}")
