"""Fetching file text for ioc-scan: GraphQL batches that survive faults, and files read whole.

Why it lives here and not in the GitHub client: what to do with a truncated blob
and how to retry a multi-file query are the scan's decisions (the client stays a
transport with GitHub's limits). Everything goes through the client's public
``graphql`` and ``get_blob``, so pacing, limits and breakers still apply.

* **Large blobs.** A blob above ``stream_threshold_bytes`` (its size is in the
  tree) is read raw and streamed to a temporary file (:func:`raw_blob`), which the
  streaming parsers read; smaller ones come as the blob endpoint's JSON, cheaper
  for them (no file).
* **Truncation.** GitHub cuts ``Blob.text`` at 512,000 bytes and says so in
  ``isTruncated``; such a blob (and a binary one) is read whole through the REST
  blob endpoint. Text that was cut is never parsed: a file that cannot be read
  whole fails with the reason, it is not reported as malformed.
* **Faults.** A query that fails as a whole (5xx, timeout, reset) is retried as
  the same batch, after the engine's retry policy for its error class, not
  broken into one query per file; only when the batch itself looks like the
  problem (it timed out twice running) is it split in halves. Retrying here
  rather than failing every item keeps the request count under faults close to
  the clean count: items failed together come back at scattered times and
  would be re-batched into many small queries.
"""

from __future__ import annotations

import asyncio
import binascii
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote

from engine.deferral import DeferredUntil
from engine.errors import BatchProcessingError, ClientError, ErrorClass, classify

BLOB_FIELDS = "... on Blob { text isTruncated isBinary byteSize }"
#: error classes worth another try of the same query
TRANSIENT = frozenset({ErrorClass.SERVER, ErrorClass.TIMEOUT, ErrorClass.NETWORK})


@dataclass(frozen=True, slots=True)
class BlobText:
    """One blob as GraphQL answered: ``text`` is complete unless ``truncated``."""

    text: str | None
    truncated: bool
    binary: bool
    byte_size: int | None

    @property
    def complete(self) -> bool:
        return self.text is not None and not self.truncated and not self.binary


async def per_client(gh: Any, owners: list[str], query: Any) -> list[Any]:
    """``query(client, indexes)`` once per client the owners route to (one per org's
    installation behind an :class:`~engine.github.router.OwnerRouter`, else one), run
    together; the answers back in the order of ``owners``. An installation reads only
    its own org, so a query may not mix owners of different clients.

    An installation whose budget is spent until its reset (:class:`DeferredUntil`, inside a
    run's worker) does not sink the others' answers: its requests get the deferral as their
    answer, and the engine puts just those items back until the reset. When every client
    deferred, the deferral is raised."""
    groups: dict[int, tuple[Any, list[int]]] = {}
    for index, owner in enumerate(owners):
        client = gh.client_for(owner)
        groups.setdefault(id(client), (client, []))[1].append(index)

    async def answered(client: Any, indexes: list[int]) -> Any:
        try:
            return await query(client, indexes)
        except DeferredUntil as deferral:
            if len(groups) == 1:
                raise
            return [deferral] * len(indexes)

    answers = await asyncio.gather(*(answered(client, indexes) for client, indexes in groups.values()))
    deferred = [a[0] for a in answers if a and isinstance(a[0], DeferredUntil)]
    if len(deferred) == len(groups):
        raise deferred[0]
    out: list[Any] = [None] * len(owners)
    for (_, indexes), answer in zip(groups.values(), answers, strict=True):
        for index, value in zip(indexes, answer, strict=True):
            out[index] = value
    return out


async def graphql_blob_texts(gh: Any, requests: list[tuple[str, str, str]]) -> list[BlobText | Exception]:
    """Blobs of many repositories in one query per client: ``(owner, repo, sha or "REF:path")`` each.

    Per request a :class:`BlobText`, or a :class:`ClientError` when the repository
    or the object is missing. A failure of a whole query raises.
    """
    return await per_client(gh, [owner for owner, _, _ in requests],
                            lambda client, indexes: _blob_texts(client, [requests[i] for i in indexes]))


async def _blob_texts(gh: Any, requests: list[tuple[str, str, str]]) -> list[BlobText | Exception]:
    declarations, fields, variables = [], [], {}
    for i, (owner, repo, expression) in enumerate(requests):
        declarations.append(f"$o{i}: String!, $n{i}: String!, $e{i}: String!")
        fields.append(f"f{i}: repository(owner: $o{i}, name: $n{i}) {{ object(expression: $e{i}) {{ {BLOB_FIELDS} }} }}")
        variables.update({f"o{i}": owner, f"n{i}": repo, f"e{i}": expression})
    result = await gh.graphql(f"query({', '.join(declarations)}) {{ {' '.join(fields)} }}", variables)
    data = result["data"]
    field_errors: dict[str, Any] = {}  # the first error of each aliased field
    for error in result["errors"]:
        path = error.get("path") or [""]
        field_errors.setdefault(str(path[0]), error)
    out: list[BlobText | Exception] = []
    for i, (owner, repo, expression) in enumerate(requests):
        node, error = data.get(f"f{i}"), field_errors.get(f"f{i}")
        blob = node.get("object") if isinstance(node, dict) else None
        if isinstance(blob, dict) and "isTruncated" in blob:
            out.append(BlobText(blob.get("text"), bool(blob.get("isTruncated")), bool(blob.get("isBinary")),
                                blob.get("byteSize")))
        elif error is not None:
            status = {"NOT_FOUND": 404, "FORBIDDEN": 403}.get(str(error.get("type")))
            out.append(ClientError(f"GitHub GraphQL: {owner}/{repo} {expression}: {error.get('message', '')}",
                                   status_code=status, lane="graphql"))
        else:
            what = "repository" if node is None else "blob"
            out.append(ClientError(f"GitHub GraphQL: {what} {owner}/{repo} {expression} not found",
                                   status_code=404, lane="graphql"))
    return out


def _blob_path(owner: str, repo: str, sha: str) -> str:
    return f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}/git/blobs/{quote(sha, safe='')}"


@asynccontextmanager
async def raw_blob(gh: Any, owner: str, repo: str, sha: str,
                   max_bytes: int | None = None) -> AsyncIterator[tuple[IO[bytes], int]]:
    """A large blob's bytes as GitHub stores them (raw media type, streamed to a spooled
    temporary file: never in memory whole) and its size; the file is gone after the block.
    A body above ``max_bytes`` raises :class:`~engine.github.client.BodyTooLarge`."""
    async with gh.client_for(owner).download(_blob_path(owner, repo, sha), lane="read",
                                             max_bytes=max_bytes) as file:
        file.seek(0, io.SEEK_END)
        size = file.tell()
        file.seek(0)
        yield file, size


async def read_blob(gh: Any, owner: str, repo: str, sha: str) -> bytes:
    """A blob whole, through the REST blob endpoint, without the HTTP cache: a blob never
    changes (its parsed form is cached by sha), and keeping a copy of a large lockfile's
    base64 body in the ETag cache would double the memory and the database it costs."""
    response = await gh.request("GET", _blob_path(owner, repo, sha), lane="read", conditional=False)
    data = response.data if isinstance(response.data, dict) else {}
    del response        # its raw body: a large blob is held once as base64 text, then once decoded
    content = data.pop("content", None) or ""
    if data.get("encoding") == "base64":
        # binascii reads the ASCII str in place (base64.b64decode would copy it to bytes first)
        return binascii.a2b_base64(content)
    return content.encode("utf-8")


def _batch_is_the_problem(exc: BaseException) -> bool:
    """A timeout of the query (client side, or GitHub's 502 "...the result of a timeout")."""
    return classify(exc) is ErrorClass.TIMEOUT or (
        getattr(exc, "status_code", None) in (502, 504) and "timeout" in str(exc).lower())


async def graphql_heads(gh: Any, repos: list[tuple[str, str]]) -> list[tuple[str, str] | None]:
    """``(default branch, head commit oid)`` of up to 100 repositories in one query per
    client; None for a repository that is missing, empty (no branch) or not answered."""
    return await per_client(gh, [owner for owner, _ in repos],
                            lambda client, indexes: _heads(client, [repos[i] for i in indexes]))


async def _heads(gh: Any, repos: list[tuple[str, str]]) -> list[tuple[str, str] | None]:
    declarations, fields, variables = [], [], {}
    for i, (owner, name) in enumerate(repos):
        declarations.append(f"$o{i}: String!, $n{i}: String!")
        fields.append(f"r{i}: repository(owner: $o{i}, name: $n{i}) {{ defaultBranchRef {{ name target {{ oid }} }} }}")
        variables.update({f"o{i}": owner, f"n{i}": name})
    result = await gh.graphql(f"query({', '.join(declarations)}) {{ {' '.join(fields)} }}", variables)
    out: list[tuple[str, str] | None] = []
    for i in range(len(repos)):
        node = result["data"].get(f"r{i}")
        ref = node.get("defaultBranchRef") if isinstance(node, dict) else None
        target = ref.get("target") if isinstance(ref, dict) else None
        oid = target.get("oid") if isinstance(target, dict) else None
        out.append((str(ref["name"]), str(oid)) if oid and isinstance(ref, dict) and ref.get("name") else None)
    return out


class BatchFetcher:
    """Runs blob queries with retries of the whole batch (see the module docstring).

    ``decide(exc, retries_so_far)`` is the engine's retry policy
    (:meth:`engine.retry.RetryPlanner.decide`); ``sleep`` is interruptible.
    """

    def __init__(self, gh: Any, decide: Callable[[BaseException, int], Any],
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                 on_count: Callable[[str, int], None] | None = None) -> None:
        self.gh, self.decide, self.sleep = gh, decide, sleep
        self.count = on_count or (lambda _name, _n: None)

    async def texts(self, requests: list[tuple[str, str, str]]) -> list[BlobText | Exception]:
        retries, timeouts = 0, 0
        while True:
            try:
                return await graphql_blob_texts(self.gh, requests)
            except BatchProcessingError as exc:
                timeouts = timeouts + 1 if _batch_is_the_problem(exc) else 0
                if timeouts >= 2 and len(requests) > 1 and classify(exc) in TRANSIENT:
                    self.count("graphql_batches_split", 1)
                    half = len(requests) // 2
                    first, second = await asyncio.gather(self.texts(requests[:half]), self.texts(requests[half:]))
                    return [*first, *second]
                await self._wait_or_raise(exc, retries)
                retries += 1

    async def heads(self, repos: list[tuple[str, str]]) -> list[tuple[str, str] | None]:
        """:func:`graphql_heads`, retried like a blob batch (never split: the query is small)."""
        retries = 0
        while True:
            try:
                return await graphql_heads(self.gh, repos)
            except BatchProcessingError as exc:
                await self._wait_or_raise(exc, retries)
                retries += 1

    async def _wait_or_raise(self, exc: BatchProcessingError, retries: int) -> None:
        if classify(exc) not in TRANSIENT and not getattr(exc, "retry_after", None):
            raise exc
        decision = self.decide(exc, retries)
        if not decision.retry:
            raise exc
        self.count("graphql_batch_retries", 1)
        await self.sleep(decision.delay)
