"""The rate-aware GitHub client: auth, lanes, pacing, conditional requests, errors.

See :mod:`engine.github.client` for the design; the names below are the public API.

Where it can point (``api_url``; the CLI's ``--api-url``):

* github.com — the default ``https://api.github.com``; the token comes from
  ``--token``, ``GITHUB_TOKEN``, ``GH_TOKEN`` or ``gh auth token``
  (:func:`resolve_token`).
* GitHub Enterprise Server — ``https://HOST/api/v3``; GraphQL is then derived
  as ``https://HOST/api/graphql``. Servers with rate limiting disabled send no
  ``x-ratelimit-*`` headers: the pacer notices and stops pacing.
* the simulator — ``batchdeck sim`` prints its base URL; pass that, and set
  ``github.time_scale`` to the simulator's ``time_scale`` so the client's fixed
  waits (a minute after a secondary limit, a second between mutations) shrink
  with the simulator's clock. No token is needed (``bad-token`` gets a 401).
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.github.app_auth import InstallationAuth
    from engine.github.auth import RedactingFilter, redact, register_secret, resolve_token
    from engine.github.cache import CachedEntry, HttpCache, MemoryHttpCache, cache_key
    from engine.github.client import GitHubClient, Response, parse_links
    from engine.github.errors import error_for_exception, error_for_response, limit_kind
    from engine.github.lanes import ContentBudget, Lane, Lanes
    from engine.github.ratelimit import (
        Bucket,
        BudgetOutlook,
        RateHeaders,
        RateLimiter,
        budget_outlook,
        parse_rate_headers,
    )
    from engine.github.router import OwnerRouter
    from engine.github.transport import make_transport

# Loaded on first use (PEP 562): importing a light part (engine.github.lanes, .auth) or a kind that
# names this package at load time must not import httpx, aiohttp and the client (~17 MB of RSS
# for every run, the synthetic ones too: the store loads every installed kind for its tables).
_WHERE = {
    "Bucket": "engine.github.ratelimit",
    "BudgetOutlook": "engine.github.ratelimit",
    "CachedEntry": "engine.github.cache",
    "ContentBudget": "engine.github.lanes",
    "GitHubClient": "engine.github.client",
    "HttpCache": "engine.github.cache",
    "InstallationAuth": "engine.github.app_auth",
    "Lane": "engine.github.lanes",
    "Lanes": "engine.github.lanes",
    "MemoryHttpCache": "engine.github.cache",
    "OwnerRouter": "engine.github.router",
    "RateHeaders": "engine.github.ratelimit",
    "RateLimiter": "engine.github.ratelimit",
    "RedactingFilter": "engine.github.auth",
    "Response": "engine.github.client",
    "budget_outlook": "engine.github.ratelimit",
    "cache_key": "engine.github.cache",
    "error_for_exception": "engine.github.errors",
    "error_for_response": "engine.github.errors",
    "limit_kind": "engine.github.errors",
    "make_transport": "engine.github.transport",
    "parse_links": "engine.github.client",
    "parse_rate_headers": "engine.github.ratelimit",
    "redact": "engine.github.auth",
    "register_secret": "engine.github.auth",
    "resolve_token": "engine.github.auth",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Bucket",
    "BudgetOutlook",
    "CachedEntry",
    "ContentBudget",
    "GitHubClient",
    "HttpCache",
    "InstallationAuth",
    "Lane",
    "Lanes",
    "MemoryHttpCache",
    "OwnerRouter",
    "RateHeaders",
    "RateLimiter",
    "RedactingFilter",
    "Response",
    "budget_outlook",
    "cache_key",
    "error_for_exception",
    "error_for_response",
    "limit_kind",
    "make_transport",
    "parse_links",
    "parse_rate_headers",
    "redact",
    "register_secret",
    "resolve_token",
]
