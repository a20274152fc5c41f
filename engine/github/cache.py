"""The HTTP cache behind conditional requests.

GitHub does not count a ``304 Not Modified`` against the primary rate limit, so
a re-run that revalidates what it fetched before (``If-None-Match`` with the
stored ETag, or ``If-Modified-Since``) costs almost nothing. The client only
needs somewhere to keep validators and bodies; this module is that contract,
deliberately tiny and async so the lead's SQLite store can implement it with
one ``SELECT`` and one upsert.

Keys are ``"<METHOD> <absolute URL with query>"``. They never contain the token
(it travels in a header), so a persisted cache holds no secret. A cache is
scoped to one identity: GitHub answers the same URL differently for different
tokens (private repositories), so do not share one cache file between tokens.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(slots=True)
class CachedEntry:
    """A stored response: its validators, status, raw body and the headers worth keeping."""

    etag: str | None
    last_modified: str | None
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class HttpCache(Protocol):
    async def get(self, key: str) -> CachedEntry | None: ...

    async def put(self, key: str, entry: CachedEntry) -> None: ...


def cache_key(method: str, url: str) -> str:
    return f"{method.upper()} {url}"


class MemoryHttpCache:
    """An in-process LRU :class:`HttpCache` (tests, short runs)."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[str, CachedEntry] = OrderedDict()
        self._max_entries = max_entries

    async def get(self, key: str) -> CachedEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    async def put(self, key: str, entry: CachedEntry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
