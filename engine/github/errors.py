"""Map GitHub's answers and transport failures to the engine's error classes.

The retry policy, the circuit breaker and the report key on
:class:`~engine.errors.ErrorClass`, so every failure leaves the client as one
of the engine's exceptions, carrying ``status_code``, ``retry_after`` (seconds,
when known) and ``lane``. Telling GitHub's three kinds of 403/429 apart is the
subtle part, following GitHub's documentation:

* *secondary* limit: the message says "secondary rate limit" (or the older
  "abuse detection"), or a ``retry-after`` header is present;
* *primary* limit: ``x-ratelimit-remaining: 0`` (the reset is in
  ``x-ratelimit-reset``);
* anything else on a 403 is a permission problem: a client error; an
  unexplained 429 is treated as a secondary limit (the server is throttling).

Messages name the method, the path and GitHub's message, never the token (the
401 message names the API URL so the user knows *which* server refused it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import httpx

from engine.errors import (
    AuthError,
    BatchProcessingError,
    ClientError,
    NetworkError,
    RateLimitError,
    RequestTimeoutError,
    SecondaryRateLimitError,
    ServerError,
)
from engine.github.auth import redact
from engine.github.ratelimit import parse_rate_headers

SECONDARY_MARKERS = ("secondary rate limit", "abuse detection", "abuse-rate-limits")
MAX_MESSAGE_CHARS = 300


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``retry-after`` in seconds: a number of seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, moment - (time.time() if now is None else now))


def github_message(body: bytes | str | None) -> str:
    """The ``message`` of a GitHub error body (or the start of the raw body)."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        parsed = json.loads(text)
    except ValueError:
        return text.strip()[:MAX_MESSAGE_CHARS]
    if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
        return parsed["message"][:MAX_MESSAGE_CHARS]
    return text.strip()[:MAX_MESSAGE_CHARS]


def _headers(headers: Mapping[str, str]) -> httpx.Headers:
    return headers if isinstance(headers, httpx.Headers) else httpx.Headers(dict(headers))


def limit_kind(status: int, headers: Mapping[str, str], message: str) -> str | None:
    """``"primary"``, ``"secondary"`` or None (not a rate limit) for a response."""
    if status not in (403, 429):
        return None
    headers = _headers(headers)
    lowered = message.lower()
    if any(marker in lowered for marker in SECONDARY_MARKERS):
        return "secondary"
    rate = parse_rate_headers(headers)
    if rate is not None and rate.remaining == 0:
        return "primary"
    if headers.get("retry-after") is not None:
        return "secondary"
    if "rate limit" in lowered or status == 429:
        return "secondary"
    return None


def error_for_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    method: str,
    url: str,
    lane: str,
    api_url: str,
    had_token: bool,
    now: float | None = None,
) -> BatchProcessingError:
    """The engine error for a non-success answer."""
    now = time.time() if now is None else now
    headers = _headers(headers)
    message = redact(github_message(body))
    where = f"{method} {httpx.URL(url).raw_path.decode('ascii', 'replace')}"
    if status == 401:
        text = (f"GitHub rejected the token (401 Bad credentials) for {api_url}" if had_token
                else f"GitHub requires a token (401) for {api_url}: set GITHUB_TOKEN or pass --token")
        return AuthError(text, status_code=401, lane=lane)
    kind = limit_kind(status, headers, message)
    if kind == "primary":
        rate = parse_rate_headers(headers)
        reset = rate.reset if rate is not None else None
        wait = max(0.0, reset - now) if reset is not None else None
        resource = (rate.resource if rate is not None else None) or "core"
        return RateLimitError(
            f"GitHub primary rate limit ({resource}) exhausted on {where}; resets in {wait or 0:.0f}s",
            reset_time=reset, retry_after=wait, status_code=status, lane=lane,
        )
    if kind == "secondary":
        retry_after = parse_retry_after(headers.get("retry-after"), now)
        return SecondaryRateLimitError(
            f"GitHub secondary rate limit on {where} ({status}): {message or 'no message'}",
            retry_after=retry_after, status_code=status, lane=lane,
        )
    detail = f": {message}" if message else ""
    if status >= 500:
        return ServerError(f"GitHub server error {status} on {where}{detail}", status_code=status, lane=lane)
    return ClientError(f"GitHub answered {status} to {where}{detail}", status_code=status, lane=lane)


def _is_aiohttp_connection_failure(exc: BaseException | None) -> bool:
    try:
        import aiohttp
    except ImportError:   # pragma: no cover - aiohttp is a dependency
        return False
    return isinstance(exc, aiohttp.ClientError) and not isinstance(exc, TimeoutError)


def error_for_exception(exc: BaseException, *, method: str, url: str, lane: str) -> BatchProcessingError:
    """The engine error for a request that got no answer."""
    if isinstance(exc, BatchProcessingError):
        return exc
    where = f"{method} {httpx.URL(url).raw_path.decode('ascii', 'replace')}"
    detail = redact(str(exc)) or type(exc).__name__
    # httpx-aiohttp reports a dropped connection (aiohttp's ServerDisconnectedError,
    # ClientOSError) as httpx.ConnectTimeout; the chained cause tells the truth.
    if isinstance(exc, httpx.TimeoutException) and not _is_aiohttp_connection_failure(exc.__cause__):
        return RequestTimeoutError(f"GitHub request timed out: {where} ({type(exc).__name__})", lane=lane)
    if isinstance(exc, TimeoutError):   # before OSError: TimeoutError is one
        return RequestTimeoutError(f"GitHub request timed out: {where}", lane=lane)
    if isinstance(exc, httpx.TransportError | OSError) or _is_aiohttp_connection_failure(exc):
        return NetworkError(f"network error on {where}: {detail}", lane=lane)
    return NetworkError(f"request failed on {where}: {type(exc).__name__}: {detail}", lane=lane)
