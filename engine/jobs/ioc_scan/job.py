"""ioc-scan: find compromised package versions across every repository of an org.

Items and lanes (the engine knows none of this):

* ``list:org/<owner>?page=<n>`` / ``list:user/<owner>?page=<n>`` (lane ``read``,
  planned: the first page of each listing): one page of repositories. The first
  page spawns every other page (``Link: rel="last"``); each page spawns the
  repositories wanted, with the head commit of their default branch asked for
  in one GraphQL query per 100 repositories. Planning itself asks the API
  nothing, so a listing failure is retried like any item and, if it persists,
  is a failed item named in the coverage gaps, never a failed run.
* ``repo:<owner>/<name>`` (lane ``read``, spawned, or planned for ``--repo``):
  when its head commit is the one stored by the last scan (``repo_heads``, this
  job's own table), its scannable files are known and no request is made;
  otherwise one recursive tree call by head commit (its ETag cached). The
  manifests and lockfiles in it are matched from the blob cache or spawned as
  file items.
* ``file:<owner>/<name>:<path>`` (lane ``graphql`` when cross-repo batching is
  on, the client has a token and the file is below ``stream_large_files_threshold``,
  else ``read``):
  fetched by blob sha — in batches through one GraphQL query with aliases
  (``batch_lanes``: the engine's adaptive sizer picks how many files a query
  carries; a query failing as a whole is retried as a batch, see
  :mod:`~engine.jobs.ioc_scan.fetch`), or through the REST blob endpoint for
  large files: raw, streamed to a temporary file the streaming parsers read. A
  file above what ``max_memory_usage_mb`` allows is not fetched: one file error
  naming its size (``BlobLimits.refuse``). A blob GraphQL cut at 512,000 bytes (``isTruncated``) is read
  whole from the blob endpoint before it is parsed.

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
from urllib.parse import parse_qs, quote, urlsplit

from engine.deferral import DeferredUntil
from engine.errors import BatchProcessingError, ClientError, InputError, NetworkError
from engine.github.client import BodyTooLarge
from engine.jobs.ioc_scan.fetch import BatchFetcher, raw_blob, read_blob
from engine.jobs.ioc_scan.iocs import IOCIndex, load_iocs
from engine.jobs.ioc_scan.matching import match_dependencies
from engine.jobs.ioc_scan.models import IOC, Dependency, IOCMatch, LockfileError
from engine.jobs.ioc_scan.parsers import BlobLimits, parser_for
from engine.jobs.ioc_scan.parsers.streaming import TooLarge
from engine.models import Item, PlannedItem
from engine.retry import RetryPlanner

FINDING_SQL = (
    "INSERT OR IGNORE INTO findings (run_id, repo, file_path, line_number, package_name, version, ecosystem, "
    "ioc_source, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
FILE_ERROR_SQL = "INSERT INTO file_errors (run_id, repo, file_path, reason, line) VALUES (?, ?, ?, ?, ?)"
BLOB_SQL = "INSERT OR REPLACE INTO blobs (sha, parser, result, error, stored_at) VALUES (?, ?, ?, ?, ?)"

#: the table is ioc-scan's own, made by its migration (engine/jobs/ioc_scan/kind.py)
REPO_HEAD_SQL = "INSERT OR REPLACE INTO repo_heads (repo, head, files, stored_at) VALUES (?, ?, ?, ?)"

REPO_PRIORITY = 100
LIST_PRIORITY = -1          # listing pages first: they unblock everything else
LIST_PAGE_SIZE = 100
HEADS_PER_QUERY = 100
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


def _listing_item(kind: str, owner: str, page: int, *, chained: bool = False) -> PlannedItem:
    """``list:org/acme?page=3``: the key a failed page is named by in the coverage gaps."""
    payload: dict[str, Any] = {"kind": kind, "owner": owner, "page": page}
    if chained:
        payload["chained"] = True
    return PlannedItem(key=f"list:{kind}/{owner}?page={page}", payload=payload, priority=LIST_PRIORITY, lane="read")


def _page_of(url: str | None) -> int | None:
    if not url:
        return None
    try:
        return int(parse_qs(urlsplit(url).query)["page"][0])
    except (KeyError, IndexError, ValueError):
        return None


def _uses_graphql(ctx: Any) -> bool:
    """GraphQL (head commits, file batches) only with cross-repo batching on and a client
    with credentials: GitHub answers GraphQL without a token with 401, so an unauthenticated
    scan reads trees and blobs through REST alone, decided here rather than by catching 401s."""
    return ctx.config.batch.enable_cross_repo_batching and ctx.github.authenticated


class _Parsed:
    """Dependencies of one blob (or why it could not be parsed). ``cacheable``: a fact about
    the blob, kept by sha across runs (a refusal for its size under the settings is not)."""

    __slots__ = ("cacheable", "deps", "error", "line")

    def __init__(self, deps: list[Dependency] | None, error: str | None, line: int | None = None,
                 cacheable: bool = True) -> None:
        self.deps = deps
        self.error = error
        self.line = line
        self.cacheable = cacheable

    @classmethod
    def failed(cls, exc: LockfileError) -> _Parsed:
        return cls(None, exc.reason, exc.line, cacheable=not isinstance(exc, TooLarge))


class IocScanJob:
    kind: ClassVar[str] = "ioc-scan"
    batch_lanes: ClassVar[frozenset[str]] = frozenset({"graphql"})
    # repo items read the tree and spawn a file item per lockfile: the total grows until they end
    spawning_kinds: ClassVar[frozenset[str]] = frozenset({"repo"})

    def __init__(self) -> None:
        self._repo_slots: asyncio.Semaphore | None = None
        self._index: IOCIndex | None = None
        self._parsed: OrderedDict[tuple[str, str], _Parsed] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Future[_Parsed]] = {}
        self._batch_fetcher: BatchFetcher | None = None
        self._spawned_keys: set[str] = set()

    # -------------------------------------------------------------------- planning
    def index(self, spec: dict[str, Any]) -> IOCIndex:
        if self._index is None:
            self._index = _index_from_spec(spec)
        return self._index

    async def plan(self, spec: dict[str, Any], ctx: Any):
        """One item per listing (its first page) and per repository named in the spec.

        Planning asks the API nothing: a listing is work like any other, retried by
        error class, kept across a resume, and a page that fails for good is a failed
        item (a coverage gap the verdict names), not a failed run.
        """
        if ctx.github is None:
            raise InputError("ioc-scan needs a GitHub client (api_url and token)")
        self.index(spec)
        targets = spec.get("targets") or {}
        for kind, owners in (("org", targets.get("orgs")), ("user", targets.get("users"))):
            for owner in owners or []:
                yield _listing_item(kind, owner, 1)
        seen: set[str] = set()
        for full_name in targets.get("repos") or []:
            if full_name in seen:
                continue
            seen.add(full_name)
            owner, _, name = full_name.partition("/")
            yield PlannedItem(key=f"repo:{full_name}",
                              payload={"owner": owner, "name": name, "full_name": full_name, "default_branch": None},
                              priority=REPO_PRIORITY, lane="read")

    # -------------------------------------------------------------------- listings
    async def _list_page(self, item: Item, ctx: Any) -> dict[str, int]:
        """One page of an org's or a user's repositories: spawn the repositories wanted and,
        from the first page, every further page (``Link: rel="last"``) so they list in parallel."""
        p, spec = item.payload, ctx.spec
        path = f"/{'orgs' if p['kind'] == 'org' else 'users'}/{quote(p['owner'], safe='')}/repos"
        params = {"type": "all" if p["kind"] == "org" else "owner", "per_page": LIST_PAGE_SIZE, "page": p["page"]}
        response = await ctx.github.request("GET", path, params=params, lane="read")
        repos = response.data if isinstance(response.data, list) else []
        follow: list[PlannedItem] = []
        if p["page"] == 1 or p.get("chained"):
            links = response.links
            last = _page_of(links.get("last"))
            if last is not None and p["page"] == 1:
                follow = [_listing_item(p["kind"], p["owner"], page) for page in range(2, last + 1)]
            elif "next" in links:        # no rel="last": follow the chain one page at a time
                follow = [_listing_item(p["kind"], p["owner"], p["page"] + 1, chained=True)]
        pattern = spec.get("match") or "*"

        def in_scope(repo: dict) -> bool:
            # counted so the verdict can say what the default scope left out (coverage.py)
            if repo.get("archived") and not spec.get("include_archived"):
                ctx.count("excluded_archived")
                return False
            if repo.get("fork") and not spec.get("include_forks"):
                ctx.count("excluded_forks")
                return False
            return fnmatch.fnmatch(repo.get("name", ""), pattern)

        repo_items = [
            PlannedItem(key=f"repo:{r['full_name']}", payload={
                "owner": r["owner"]["login"] if isinstance(r.get("owner"), dict) else r.get("owner"),
                "name": r["name"], "full_name": r["full_name"], "default_branch": r.get("default_branch")},
                priority=REPO_PRIORITY, lane="read")
            for r in repos if isinstance(r, dict) and r.get("full_name") and in_scope(r)
        ]
        new = await self._new_items(ctx, follow + repo_items)
        if _uses_graphql(ctx):      # otherwise no GraphQL at all, trees by ETag
            await self._add_heads(ctx, [i for i in new if i.key.startswith("repo:")])
        for planned in new:
            self._spawned_keys.add(planned.key)
            ctx.spawn(planned)
        return {"repos": len(repos), "spawned": len(new)}

    async def _add_heads(self, ctx: Any, repo_items: list[PlannedItem]) -> None:
        """The head commit of each repository's default branch, 100 per GraphQL query: a
        repository whose head is the one of the last scan needs no tree request. Without
        an answer (GraphQL failing for good) the repositories are scanned from their trees."""
        for start in range(0, len(repo_items), HEADS_PER_QUERY):
            chunk = repo_items[start:start + HEADS_PER_QUERY]
            try:
                heads = await self._fetcher(ctx).heads([(i.payload["owner"], i.payload["name"]) for i in chunk])
            except BatchProcessingError as exc:
                ctx.log.warning("head commits of %d repositories not known (%s): their trees are read",
                                len(chunk), exc)
                continue
            for planned, head in zip(chunk, heads, strict=True):
                if head is not None:
                    planned.payload["default_branch"], planned.payload["head"] = head

    async def _new_items(self, ctx: Any, planned: list[PlannedItem]) -> list[PlannedItem]:
        """The items that are not items of this run yet (spawned here, or stored before a
        resume): the same repository in two listings, or named with --repo, is scanned once;
        a first page listed again after a crash does not add its pages twice."""
        known = {p.key for p in planned if p.key in self._spawned_keys}
        rest = [p.key for p in planned if p.key not in known]
        for start in range(0, len(rest), 500):
            chunk = rest[start:start + 500]
            rows = await ctx.store.fetchall(
                f"SELECT key FROM items WHERE run_id=? AND key IN ({','.join('?' * len(chunk))})",
                (ctx.run_id, *chunk))
            known.update(row[0] for row in rows)
        new = []
        for item in planned:
            if item.key not in known:
                known.add(item.key)
                new.append(item)
        return new

    # -------------------------------------------------------------------- repositories
    async def process(self, item: Item, ctx: Any) -> Any:
        if item.key.startswith("list:"):
            return await self._list_page(item, ctx)
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
        branch, head = p.get("default_branch"), p.get("head")
        entries = await self._known_files(ctx, p["full_name"], head) if head else None
        if entries is not None:
            ctx.count("trees_skipped")     # head unchanged since the last scan: its files are known
        else:
            if not branch:
                branch = (await gh.get_repo(p["owner"], p["name"]))["default_branch"]
            try:
                # by the head commit when known, so the files stored below belong to that head
                tree = await gh.get_tree(p["owner"], p["name"], head or branch, recursive=True)
            except ClientError as exc:
                if exc.status_code == 409:        # "Git Repository is empty."
                    return {"files": 0, "matches": 0}
                raise
            entries = [{"path": e["path"], "sha": e["sha"], "size": e.get("size")} for e in tree
                       if e.get("type") == "blob" and parser_for(e["path"]) is not None]
            if head:
                ctx.write(REPO_HEAD_SQL, [(p["full_name"], head, json.dumps(entries, separators=(",", ":")),
                                           time.time())])
        batch, graphql = ctx.config.batch, _uses_graphql(ctx)
        files, cached, spawned, matches = 0, 0, 0, 0
        for entry in entries:
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
            lane = "graphql" if graphql and size <= batch.stream_large_files_threshold \
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

    async def _known_files(self, ctx: Any, repo: str, head: str) -> list[dict[str, Any]] | None:
        """The scannable files of ``repo`` stored by an earlier scan at this head commit, or None."""
        row = await ctx.store.fetchone("SELECT head, files FROM repo_heads WHERE repo=?", (repo,))
        if row is None or row[0] != head:
            return None
        return json.loads(row[1])

    # -------------------------------------------------------------------- files
    async def _scan_file_rest(self, item: Item, ctx: Any) -> dict[str, int]:
        p = item.payload
        key = (p["sha"], p["parser"])

        async def fetch() -> _Parsed:
            limits = BlobLimits.from_config(ctx.config)
            size = int(p.get("size") or 0)
            refused = limits.refuse(p["path"], size)
            if refused is not None:         # known from the tree: not fetched at all
                ctx.count("blobs_too_large")
                return _Parsed.failed(refused)
            if size > limits.stream_threshold:
                return await self._fetch_streamed(ctx, p, limits)
            data = await read_blob(ctx.github, p["owner"], p["name"], p["sha"])
            return self._parse(ctx, p["path"], data)

        parsed = await self._single_flight(ctx, key, fetch)
        return {"matches": self._record(ctx, parsed, p["full_name"], p["path"])}

    async def process_batch(self, items: list[Item], ctx: Any) -> list[Any]:
        """Files of many repositories in one GraphQL query (one alias per distinct blob).

        A blob another batch is already fetching is waited for, not fetched again:
        the single-flight future is registered in the same step (no await) as the
        check that found no one fetching it, and a waiting item keeps that future, so
        it ends with what actually happened to the fetch (its result or its error).
        The query is retried as a batch under faults (:class:`BatchFetcher`); a blob
        GraphQL cut short (``isTruncated``) or binary is read whole from the blob endpoint.
        """
        results: list[Any] = [None] * len(items)
        fetch: dict[tuple[str, str], list[int]] = {}
        waiting: dict[tuple[str, str], tuple[asyncio.Future[_Parsed], list[int]]] = {}
        futures: dict[tuple[str, str], asyncio.Future[_Parsed]] = {}
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
                elif key in waiting:
                    waiting[key][1].append(i)
                elif key in self._inflight:
                    waiting[key] = (self._inflight[key], [i])
                else:
                    fetch[key] = [i]
                    futures[key] = self._inflight[key] = loop.create_future()
            if fetch:
                requests = [(items[idx[0]].payload["owner"], items[idx[0]].payload["name"], key[0])
                            for key, idx in fetch.items()]
                blobs = await self._fetcher(ctx).texts(requests)
                whole = [self._read_whole(ctx, items[idx[0]].payload, key, blob)
                         for (key, idx), blob in zip(fetch.items(), blobs, strict=True)]
                for key, data in zip(fetch, await asyncio.gather(*whole, return_exceptions=True), strict=True):
                    if isinstance(data, BaseException):
                        if not isinstance(data, Exception | DeferredUntil):
                            raise data
                        futures[key].set_exception(data)
                        futures[key].exception()      # retrieved: the items below carry it
                        continue
                    parsed = self._parse(ctx, items[fetch[key][0]].payload["path"], data)
                    self._remember(ctx, key, parsed)
                    futures[key].set_result(parsed)
        except BaseException as exc:
            # batches waiting for these blobs end with this error (a stop: a retryable one)
            carried = exc if isinstance(exc, Exception | DeferredUntil) else NetworkError(
                "blob fetch interrupted by a stop")
            for future in futures.values():
                if not future.done():
                    future.set_exception(carried)
                    future.exception()
            raise
        finally:
            for key in futures:
                self._inflight.pop(key, None)
        pending = [(futures[key], idx) for key, idx in fetch.items()] + list(waiting.values())
        for future, idx in pending:
            try:
                parsed = await asyncio.shield(future)     # another batch's future: not ours to cancel
            except (Exception, DeferredUntil) as exc:     # a deferral: that item waits for its reset
                for i in idx:
                    results[i] = exc
                continue
            for i in idx:
                p = items[i].payload
                results[i] = {"matches": self._record(ctx, parsed, p["full_name"], p["path"])}
        return results

    @staticmethod
    async def _fetch_streamed(ctx: Any, p: dict[str, Any], limits: BlobLimits) -> _Parsed:
        """A large blob read raw into a temporary file and parsed from it, an entry at a time."""
        parser = parser_for(p["path"])
        assert parser is not None
        ctx.count("blobs_streamed")
        try:
            async with raw_blob(ctx.github, p["owner"], p["name"], p["sha"], limits.max_blob_bytes) as (file, size):
                try:
                    return _Parsed(list(parser.parse_file(p["path"], file, size, limits)), None)
                except LockfileError as exc:
                    return _Parsed.failed(exc)
        except BodyTooLarge as exc:         # the tree said less than the server sent
            ctx.count("blobs_too_large")
            refused = limits.refuse(p["path"], exc.size, at_least=True)
            assert refused is not None
            return _Parsed.failed(refused)

    def _fetcher(self, ctx: Any) -> BatchFetcher:
        if self._batch_fetcher is None or self._batch_fetcher.gh is not ctx.github:
            self._batch_fetcher = BatchFetcher(ctx.github, RetryPlanner(ctx.config).decide, on_count=ctx.count)
        return self._batch_fetcher

    @staticmethod
    async def _read_whole(ctx: Any, p: dict[str, Any], key: tuple[str, str], blob: Any) -> str | bytes:
        """The complete content of a blob GraphQL answered for (raises what stopped it)."""
        if isinstance(blob, Exception | DeferredUntil):
            raise blob
        if blob.complete:
            return blob.text
        # cut at 512,000 bytes (isTruncated) or binary: the blob endpoint gives it whole
        ctx.count("blobs_read_whole")
        data = await read_blob(ctx.github, p["owner"], p["name"], key[0])
        if blob.byte_size is not None and len(data) < blob.byte_size:
            raise ClientError(f"{p['full_name']}:{p['path']}: only {len(data):,} of {blob.byte_size:,} bytes "
                              "could be read (file not scanned)")
        return data

    # -------------------------------------------------------------------- parsing and caches
    @staticmethod
    def _parse(ctx: Any, path: str, data: str | bytes) -> _Parsed:
        parser = parser_for(path)
        assert parser is not None
        try:
            # above batch.memory.stream_threshold_bytes: read an entry at a time, or refused
            return _Parsed(list(parser.parse_blob(path, data, BlobLimits.from_config(ctx.config))), None)
        except LockfileError as exc:
            return _Parsed.failed(exc)

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
            carried = exc if isinstance(exc, Exception | DeferredUntil) else NetworkError(
                "blob fetch interrupted by a stop")
            future.set_exception(carried)
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
        if not parsed.cacheable:
            return
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
