"""The ETag cache of conditional requests, kept in the run database.

Implements :class:`engine.github.cache.HttpCache` over the ``http_cache``
table, so a re-scan next week revalidates (``If-None-Match``) what this scan
fetched and GitHub answers ``304`` at no rate-limit cost.

Reads go to SQLite (with a small in-memory LRU in front); writes are buffered
and handed to the run's :class:`~engine.recorder.Recorder` once the runner
attaches it, so a scan of 10,000 repositories does not commit 10,000 times.
Before a run starts (or with no run at all) puts are committed in small
groups directly.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import Any

from engine.github.cache import CachedEntry
from engine.store import Store

UPSERT_SQL = (
    "INSERT OR REPLACE INTO http_cache (key, etag, last_modified, status, body, headers, stored_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
DIRECT_FLUSH_ROWS = 50


class SqliteHttpCache:
    def __init__(self, store: Store, *, memory_entries: int = 512) -> None:
        self.store = store
        self._recent: OrderedDict[str, CachedEntry] = OrderedDict()
        self._memory_entries = memory_entries
        self._recorder: Any = None
        self._pending: list[tuple] = []

    def attach(self, recorder: Any) -> None:
        """Hand future writes to the run's one writer (called by the runner)."""
        self._recorder = recorder
        if self._pending:
            recorder.add(UPSERT_SQL, self._pending)
            self._pending = []

    def detach(self) -> None:
        self._recorder = None

    async def get(self, key: str) -> CachedEntry | None:
        entry = self._recent.get(key)
        if entry is not None:
            self._recent.move_to_end(key)
            return entry
        row = await self.store.fetchone(
            "SELECT etag, last_modified, status, body, headers FROM http_cache WHERE key=?", (key,)
        )
        if row is None:
            return None
        entry = CachedEntry(row[0], row[1], row[2], bytes(row[3]), json.loads(row[4]))
        self._remember(key, entry)
        return entry

    async def put(self, key: str, entry: CachedEntry) -> None:
        self._remember(key, entry)
        row = (key, entry.etag, entry.last_modified, entry.status, entry.body, json.dumps(entry.headers),
               time.time())
        if self._recorder is not None:
            self._recorder.add(UPSERT_SQL, [row])
            return
        self._pending.append(row)
        if len(self._pending) >= DIRECT_FLUSH_ROWS:
            await self.flush()

    async def flush(self) -> None:
        if self._pending:
            rows, self._pending = self._pending, []
            await self.store.write_many([(UPSERT_SQL, rows)])

    def _remember(self, key: str, entry: CachedEntry) -> None:
        self._recent[key] = entry
        self._recent.move_to_end(key)
        while len(self._recent) > self._memory_entries:
            self._recent.popitem(last=False)
