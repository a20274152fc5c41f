"""ioc-scan: find compromised package versions across every repository of an org.

Items and lanes (the engine knows none of this):

* ``repo:<owner>/<name>`` (lane ``read``, planned): one recursive tree call
  (its ETag cached, so a re-scan of an unchanged repo costs nothing), then the
  manifests and lockfiles in it are matched from the blob cache or spawned as
  file items.
* ``file:<owner>/<name>:<path>`` (lane ``graphql`` when cross-repo batching is
  on and the file is below ``stream_large_files_threshold``, else ``read``):
  fetched by blob sha — in batches through one GraphQL query with aliases
  (``batch_lanes``: the engine's adaptive sizer picks how many files a query
  carries and shrinks it on timeouts and 502s), or through the REST blob
  endpoint for large files.

The same blob (an identical lockfile in many repos) is fetched and parsed once
per run (a single-flight future per sha) and cached in SQLite by sha across
runs (``blobs`` table), so a re-scan fetches nothing but (revalidated) trees.

File priority when ``enable_file_prioritization`` is on: lockfiles before
manifests, root before nested; repos come after every file already found, so
findings show up early and memory stays flat.

Spec::

    {"targets": {"orgs": [...], "users": [...], "repos": ["owner/name", ...]},
     "iocs": {"sources": [...], "entries": [[ecosystem, name, versions|null, source], ...]},
     "include_archived": false, "include_forks": false, "match": "*"}

The IOC entries are stored in the spec so a run resumed or replayed elsewhere
does not depend on the IOC files still being where they were.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar

from engine.errors import ClientError, InputError
from engine.jobs.ioc_scan.iocs import IOCIndex, load_iocs
from engine.jobs.ioc_scan.matching import match_dependencies
from engine.jobs.ioc_scan.models import IOC, Dependency, IOCMatch, LockfileError
from engine.jobs.ioc_scan.parsers import parser_for
from engine.models import Item, PlannedItem

FINDING_SQL = (
    "INSERT OR IGNORE INTO findings (run_id, repo, file_path, line_number, package_name, version, ecosystem, "
    "ioc_source, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
FILE_ERROR_SQL = "INSERT INTO file_errors (run_id, repo, file_path, reason, line) VALUES (?, ?, ?, ?, ?)"
BLOB_SQL = "INSERT OR REPLACE INTO blobs (sha, parser, result, error, stored_at) VALUES (?, ?, ?, ?, ?)"

REPO_PRIORITY = 100
PARSED_CACHE = 4096


def ioc_spec(paths: list[str | Path]) -> dict[str, Any]:
    """Load IOC files (raising InputError on bad ones) into the spec's self-contained form."""
    index = load_iocs([Path(p) for p in paths])
    entries = [[i.ecosystem, i.name, sorted(i.versions) if i.versions is not None else None, i.source]
               for i in index]
    return {"sources": [str(p) for p in paths], "entries": entries}


def _index_from_spec(spec: dict[str, Any]) -> IOCIndex:
    iocs = spec.get("iocs") or {}
    entries = iocs.get("entries")
    if entries is None:
        return load_iocs([Path(p) for p in iocs.get("sources", [])])
    return IOCIndex.from_iocs(
        IOC(eco, name, frozenset(versions) if versions is not None else None, source)
        for eco, name, versions, source in entries
    )


class _Parsed:
    """Dependencies of one blob (or why it could not be parsed)."""

    __slots__ = ("deps", "error", "line")

    def __init__(self, deps: list[Dependency] | None, error: str | None, line: int | None = None) -> None:
        self.deps = deps
        self.error = error
        self.line = line


class IocScanJob:
    kind: ClassVar[str] = "ioc-scan"
    batch_lanes: ClassVar[frozenset[str]] = frozenset({"graphql"})
    # repo items read the tree and spawn a file item per lockfile: the total grows until they end
    spawning_kinds: ClassVar[frozenset[str]] = frozenset({"repo"})

    def __init__(self) -> None:
        self._repo_slots: asyncio.Semaphore | None = None
        self._index: IOCIndex | None = None
        self._parsed: OrderedDict[tuple[str, str], _Parsed] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Future] = {}

    # -------------------------------------------------------------------- planning
    def index(self, spec: dict[str, Any]) -> IOCIndex:
        if self._index is None:
            self._index = _index_from_spec(spec)
        return self._index

    async def plan(self, spec: dict[str, Any], ctx: Any):
        gh = ctx.github
        if gh is None:
            raise InputError("ioc-scan needs a GitHub client (api_url and token)")
        self.index(spec)
        targets = spec.get("targets") or {}
        seen: set[str] = set()
        pattern = spec.get("match") or "*"

        def wanted(repo: dict) -> bool:
            if repo.get("archived") and not spec.get("include_archived"):
                return False
            if repo.get("fork") and not spec.get("include_forks"):
                return False
            return fnmatch.fnmatch(repo.get("name", ""), pattern)

        def item(repo: dict) -> PlannedItem:
            return PlannedItem(
                key=f"repo:{repo['full_name']}",
                payload={"owner": repo["owner"]["login"] if isinstance(repo.get("owner"), dict) else repo["owner"],
                         "name": repo["name"], "full_name": repo["full_name"],
                         "default_branch": repo.get("default_branch")},
                priority=REPO_PRIORITY, lane="read",
            )

        for kind, path in (("orgs", "/orgs/{}/repos"), ("users", "/users/{}/repos")):
            for owner in targets.get(kind) or []:
                params = {"type": "all"} if kind == "orgs" else {"type": "owner"}
                async for repo in gh.paginate(path.format(owner), params):
                    if repo["full_name"] not in seen and wanted(repo):
                        seen.add(repo["full_name"])
                        yield item(repo)
        for full_name in targets.get("repos") or []:
            if full_name in seen:
                continue
            seen.add(full_name)
            owner, _, name = full_name.partition("/")
            yield PlannedItem(key=f"repo:{full_name}",
                              payload={"owner": owner, "name": name, "full_name": full_name, "default_branch": None},
                              priority=REPO_PRIORITY, lane="read")

    # -------------------------------------------------------------------- repositories
    async def process(self, item: Item, ctx: Any) -> Any:
        if item.key.startswith("repo:"):
            # max_concurrent_repos (the seed's setting): how many repositories are walked at
            # once; file fetches, spawned with a higher priority, fill the other workers.
            if self._repo_slots is None:
                self._repo_slots = asyncio.Semaphore(ctx.config.batch.max_concurrent_repos)
            async with self._repo_slots:
                return await self._scan_repo(item, ctx)
        return await self._scan_file_rest(item, ctx)

    async def _scan_repo(self, item: Item, ctx: Any) -> dict[str, int]:
        gh, p = ctx.github, item.payload
        branch = p.get("default_branch")
        if not branch:
            branch = (await gh.get_repo(p["owner"], p["name"]))["default_branch"]
        try:
            entries = await gh.get_tree(p["owner"], p["name"], branch, recursive=True)
        except ClientError as exc:
            if exc.status_code == 409:        # "Git Repository is empty."
                return {"files": 0, "matches": 0}
            raise
        batch = ctx.config.batch
        files, cached, spawned, matches = 0, 0, 0, 0
        for entry in entries:
            if entry.get("type") != "blob":
                continue
            parser = parser_for(entry["path"])
            if parser is None:
                continue
            files += 1
            key = (entry["sha"], parser.name)
            parsed = self._parsed.get(key) or await self._from_db(ctx, key)
            if parsed is not None:
                cached += 1
                matches += self._record(ctx, parsed, p["full_name"], entry["path"])
                continue
            size = int(entry.get("size") or 0)
            lane = "graphql" if batch.enable_cross_repo_batching and size <= batch.stream_large_files_threshold \
                else "read"
            depth = entry["path"].count("/")
            priority = (0 if parser.lockfile else 10) + min(depth, 9) if batch.enable_file_prioritization else 5
            ctx.spawn(PlannedItem(
                key=f"file:{p['full_name']}:{entry['path']}",
                payload={"owner": p["owner"], "name": p["name"], "full_name": p["full_name"], "path": entry["path"],
                         "sha": entry["sha"], "size": size, "parser": parser.name, "ref": branch},
                priority=priority, lane=lane,
            ))
            spawned += 1
        return {"files": files, "cached": cached, "spawned": spawned, "matches": matches}

    # -------------------------------------------------------------------- files
    async def _scan_file_rest(self, item: Item, ctx: Any) -> dict[str, int]:
        p = item.payload
        key = (p["sha"], p["parser"])

        async def fetch() -> _Parsed:
            data = await ctx.github.get_blob(p["owner"], p["name"], p["sha"])
            return self._parse(p["path"], data)

        parsed = await self._single_flight(ctx, key, fetch)
        return {"matches": self._record(ctx, parsed, p["full_name"], p["path"])}

    async def process_batch(self, items: list[Item], ctx: Any) -> list[Any]:
        """Files of many repositories in one GraphQL query (one alias per distinct blob).

        A blob another batch is already fetching is waited for, not fetched again:
        the single-flight future is registered in the same step (no await) as the
        check that found no one fetching it.
        """
        results: list[Any] = [None] * len(items)
        fetch: dict[tuple[str, str], list[int]] = {}
        waiting: dict[tuple[str, str], list[int]] = {}
        futures: dict[tuple[str, str], asyncio.Future] = {}
        loop = asyncio.get_running_loop()
        try:
            for i, item in enumerate(items):
                p = item.payload
                key = (p["sha"], p["parser"])
                parsed = self._parsed.get(key)
                if parsed is None and key not in self._inflight and key not in fetch:
                    parsed = await self._from_db(ctx, key) or self._parsed.get(key)
                if parsed is not None:
                    results[i] = {"matches": self._record(ctx, parsed, p["full_name"], p["path"])}
                elif key in fetch:
                    fetch[key].append(i)
                elif key in self._inflight:
                    waiting.setdefault(key, []).append(i)
                else:
                    fetch[key] = [i]
                    futures[key] = self._inflight[key] = loop.create_future()
            if fetch:
                requests = [(items[idx[0]].payload["owner"], items[idx[0]].payload["name"], key[0])
                            for key, idx in fetch.items()]
                texts = await ctx.github.get_file_texts_graphql(requests)
                for (key, idx), text in zip(fetch.items(), texts, strict=True):
                    first = items[idx[0]].payload
                    if isinstance(text, Exception):
                        futures[key].set_exception(text)
                        futures[key].exception()      # retrieved: the items below carry it
                        continue
                    if text is None:            # binary or too large for GraphQL: take the blob endpoint
                        data: str | bytes = await ctx.github.get_blob(first["owner"], first["name"], key[0])
                    else:
                        data = text
                    parsed = self._parse(first["path"], data)
                    self._remember(ctx, key, parsed)
                    futures[key].set_result(parsed)
        except BaseException as exc:
            for future in futures.values():
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
                    future.exception()
            raise
        finally:
            for key in futures:
                self._inflight.pop(key, None)
        for key, idx in (*fetch.items(), *waiting.items()):
            future = futures.get(key) or self._inflight.get(key)
            try:
                parsed = await future if future is not None else self._parsed.get(key)
            except Exception as exc:
                for i in idx:
                    results[i] = exc
                continue
            if parsed is None:     # the other fetch failed and was forgotten: let the retry fetch it
                for i in idx:
                    results[i] = ClientError("blob fetch by another batch failed; retrying")
                continue
            for i in idx:
                p = items[i].payload
                results[i] = {"matches": self._record(ctx, parsed, p["full_name"], p["path"])}
        return results

    # -------------------------------------------------------------------- parsing and caches
    @staticmethod
    def _parse(path: str, data: str | bytes) -> _Parsed:
        parser = parser_for(path)
        assert parser is not None
        try:
            return _Parsed(list(parser.parse(path, data)), None)
        except LockfileError as exc:
            return _Parsed(None, exc.reason, exc.line)

    async def _single_flight(self, ctx: Any, key: tuple[str, str], fetch: Any) -> _Parsed:
        parsed = self._parsed.get(key)
        if parsed is not None:
            return parsed
        running = self._inflight.get(key)
        if running is not None:
            return await running
        parsed = await self._from_db(ctx, key) or self._parsed.get(key)
        if parsed is not None:
            return parsed
        running = self._inflight.get(key)      # someone may have started while we read the cache
        if running is not None:
            return await running
        future = self._inflight[key] = asyncio.get_running_loop().create_future()
        try:
            parsed = await fetch()
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            future.exception()
            raise
        finally:
            self._inflight.pop(key, None)
        self._remember(ctx, key, parsed)
        future.set_result(parsed)
        return parsed

    async def _from_db(self, ctx: Any, key: tuple[str, str]) -> _Parsed | None:
        row = await ctx.store.fetchone("SELECT result, error FROM blobs WHERE sha=? AND parser=?", key)
        if row is None:
            return None
        deps = [Dependency.from_dict(d) for d in json.loads(row[0])] if row[0] is not None else None
        error = json.loads(row[1]) if row[1] is not None else None     # {"reason", "line"}
        parsed = _Parsed(deps, error["reason"], error.get("line")) if error else _Parsed(deps, None)
        self._keep(key, parsed)
        ctx.count("blob_cache_hits")
        return parsed

    def _remember(self, ctx: Any, key: tuple[str, str], parsed: _Parsed) -> None:
        self._keep(key, parsed)
        result = json.dumps([d.to_dict() for d in parsed.deps]) if parsed.deps is not None else None
        error = json.dumps({"reason": parsed.error, "line": parsed.line}) if parsed.error is not None else None
        ctx.write(BLOB_SQL, [(key[0], key[1], result, error, time.time())])
        ctx.count("blobs_parsed")

    def _keep(self, key: tuple[str, str], parsed: _Parsed) -> None:
        self._parsed[key] = parsed
        self._parsed.move_to_end(key)
        while len(self._parsed) > PARSED_CACHE:
            self._parsed.popitem(last=False)

    def _record(self, ctx: Any, parsed: _Parsed, repo: str, path: str) -> int:
        if parsed.error is not None:
            ctx.write(FILE_ERROR_SQL, [(ctx.run_id, repo, path, parsed.error, parsed.line)])
            ctx.count("parse_errors")
            return 0
        matches: list[IOCMatch] = match_dependencies(parsed.deps or [], self.index(ctx.spec), repo, path)
        if matches:
            ctx.write(FINDING_SQL, [(ctx.run_id, m.repo, m.file_path, m.line_number, m.package_name, m.version,
                                     m.ecosystem, m.ioc_source, m.kind) for m in matches])
            ctx.count("findings", len(matches))
        return len(matches)
