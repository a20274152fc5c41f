"""``POST /graphql``: a slice of GitHub's GraphQL schema, executed by graphql-core.

Why it is built this way:

* Queries are parsed, validated and executed by graphql-core against a real
  schema (the subset of GitHub's types a scanner uses), so aliases, fragments,
  variables and validation errors behave as in any GraphQL server; a client
  batching ``r0: repository(...) { f0: object(expression: "main:a/b") ... }``
  fetches hundreds of files in one request, as it would on github.com.
* Cost follows GitHub's documented formula: add up the requests needed to fill
  every connection (a nested connection is requested once per parent node, at
  its ``first``/``last`` size), divide by 100, round, minimum 1. Queries with
  no connections (the alias-batched blob queries) cost 1 point. Real GitHub
  may charge differently for expensive fields; it does not publish that.
* Node limits are GitHub's: every connection needs ``first`` or ``last`` in
  1..100, and a query may ask for at most 500,000 nodes.
* Errors have GitHub's shape: a top-level ``type`` (``NOT_FOUND``,
  ``RATE_LIMITED``, ``EXCESSIVE_PAGINATION``...), ``path``, ``locations``,
  ``message``; validation errors come without ``data``. Messages of
  validation errors are graphql-core's wording, not GitHub's (Ruby) wording.
* A response above ``graphql_response_limit_bytes`` is answered the way GitHub
  answers a query that ran too long: 502 with "Something went wrong while
  executing your query. This may be the result of a timeout...". Since July
  2025 GitHub charges such timeouts, so the points stay spent. ``Blob.text`` is
  cut at ``graphql_blob_text_limit`` bytes (GitHub: 512,000) with
  ``isTruncated: true``.
* A primary-limit refusal is HTTP 200 with ``{"errors": [{"type":
  "RATE_LIMITED", ...}]}`` as GitHub answers (some documentation shows
  ``RATE_LIMIT``; the client accepts both).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    build_schema,
    execute,
    get_named_type,
    parse,
    validate,
)
from starlette.requests import Request
from starlette.responses import Response

from engine.sim.data import SimFile, SimOrg, SimRepo
from engine.sim.rest import base_url, json_response, node_id

SDL = """
scalar DateTime
scalar GitObjectID
scalar URI

type Query {
  organization(login: String!): Organization
  repository(owner: String!, name: String!, followRenames: Boolean = true): Repository
  rateLimit(dryRun: Boolean = false): RateLimit
}

type RateLimit { cost: Int! limit: Int! nodeCount: Int! remaining: Int! resetAt: DateTime! used: Int! }

interface RepositoryOwner { id: ID! login: String! url: URI! }

type Organization implements RepositoryOwner {
  id: ID!
  databaseId: Int
  login: String!
  name: String
  url: URI!
  repositories(first: Int, after: String, last: Int, before: String, orderBy: RepositoryOrder,
               isFork: Boolean, isArchived: Boolean, privacy: RepositoryPrivacy): RepositoryConnection!
}

enum RepositoryPrivacy { PUBLIC PRIVATE }
enum OrderDirection { ASC DESC }
enum RepositoryOrderField { CREATED_AT UPDATED_AT PUSHED_AT NAME STARGAZERS }
input RepositoryOrder { field: RepositoryOrderField! direction: OrderDirection! }

type RepositoryConnection {
  totalCount: Int!
  nodes: [Repository]
  edges: [RepositoryEdge]
  pageInfo: PageInfo!
}
type RepositoryEdge { cursor: String! node: Repository }
type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String }

enum RepositoryVisibility { PRIVATE PUBLIC INTERNAL }
type Language { name: String! }

type Repository {
  id: ID!
  databaseId: Int
  name: String!
  nameWithOwner: String!
  owner: RepositoryOwner!
  description: String
  isArchived: Boolean!
  isFork: Boolean!
  isPrivate: Boolean!
  visibility: RepositoryVisibility!
  url: URI!
  createdAt: DateTime!
  updatedAt: DateTime!
  pushedAt: DateTime
  diskUsage: Int
  primaryLanguage: Language
  defaultBranchRef: Ref
  object(expression: String, oid: GitObjectID): GitObject
}

type Ref { id: ID! name: String! prefix: String! target: GitObject }

interface GitObject { id: ID! oid: GitObjectID! abbreviatedOid: String! repository: Repository! }

type Commit implements GitObject {
  id: ID! oid: GitObjectID! abbreviatedOid: String! repository: Repository!
  tree: Tree!
  message: String!
  committedDate: DateTime!
}

type Tree implements GitObject {
  id: ID! oid: GitObjectID! abbreviatedOid: String! repository: Repository!
  entries: [TreeEntry!]
}

type TreeEntry {
  name: String!
  path: String
  type: String!
  mode: Int!
  oid: GitObjectID!
  size: Int!
  extension: String
  object: GitObject
}

type Blob implements GitObject {
  id: ID! oid: GitObjectID! abbreviatedOid: String! repository: Repository!
  byteSize: Int!
  isBinary: Boolean
  isTruncated: Boolean!
  text: String
}
"""

MAX_PAGE = 100
MAX_NODES = 500_000
DOCS = "https://docs.github.com/graphql"


def _iso(ts: float, scaled: bool) -> str:
    """``resetAt``: whole seconds like GitHub, milliseconds when time is scaled; rounded up."""
    if not scaled:
        return datetime.fromtimestamp(math.ceil(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    seconds, millis = divmod(math.ceil(ts * 1000), 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


@dataclass
class Ctx:
    """What resolvers see: the simulator state, the caller's base URL and rate state."""

    state: Any
    base: str
    rate: dict[str, Any]


# ---------------------------------------------------------------------------
# nodes: graphql-core's default resolver reads attributes and calls methods

class OrganizationNode:
    typename = "Organization"

    def __init__(self, org: SimOrg, base: str) -> None:
        self.org, self.login, self.name, self.databaseId = org, org.login, org.login, org.id
        self.id, self.url = node_id("Organization", org.id), f"{base}/{org.login}"

    def repositories(self, info: Any, first: int | None = None, after: str | None = None,
                     last: int | None = None, before: str | None = None, orderBy: dict | None = None,
                     isFork: bool | None = None, isArchived: bool | None = None,
                     privacy: str | None = None) -> dict[str, Any]:
        repos = [r for r in self.org.repos
                 if (isFork is None or r.fork == isFork) and (isArchived is None or r.archived == isArchived)
                 and (privacy is None or r.private == (privacy == "PRIVATE"))]
        if orderBy:
            key = {"CREATED_AT": "created_at", "UPDATED_AT": "updated_at", "PUSHED_AT": "pushed_at"}.get(
                orderBy["field"])
            repos.sort(key=(lambda r: (getattr(r, key), r.id)) if key else (lambda r: r.name.lower()),
                       reverse=orderBy["direction"] == "DESC")
        start, stop = 0, len(repos)
        if after is not None:
            start = _cursor_offset(after) + 1
        if before is not None:
            stop = min(stop, _cursor_offset(before))
        if first is not None:
            stop = min(stop, start + first)
        if last is not None:
            start = max(start, stop - last)
        ctx: Ctx = info.context
        window = [(i, RepositoryNode(repos[i], ctx)) for i in range(start, stop)]
        return {
            "totalCount": len(repos),
            "nodes": [n for _, n in window],
            "edges": [{"cursor": _cursor(i), "node": n} for i, n in window],
            "pageInfo": {"hasNextPage": stop < len(repos), "hasPreviousPage": start > 0,
                         "startCursor": _cursor(start) if window else None,
                         "endCursor": _cursor(stop - 1) if window else None},
        }


def _cursor(offset: int) -> str:
    return base64.b64encode(f"cursor:v2:{offset}".encode()).decode()


def _cursor_offset(cursor: str) -> int:
    try:
        return int(base64.b64decode(cursor).decode().rsplit(":", 1)[1])
    except (ValueError, IndexError, UnicodeDecodeError):
        raise GraphQLError(f"`{cursor}` does not appear to be a valid cursor.",
                           extensions={"type": "INVALID_CURSOR_ARGUMENTS"}) from None


class RepositoryNode:
    def __init__(self, repo: SimRepo, ctx: Ctx) -> None:
        self.repo, self.ctx = repo, ctx
        self.id, self.databaseId = node_id("Repository", repo.id), repo.id
        self.name, self.nameWithOwner, self.description = repo.name, repo.full_name, repo.description
        self.isArchived, self.isFork, self.isPrivate = repo.archived, repo.fork, repo.private
        self.visibility = "PRIVATE" if repo.private else "PUBLIC"
        self.url = f"{ctx.base}/{repo.full_name}"
        self.createdAt, self.updatedAt, self.pushedAt = repo.created_at, repo.updated_at, repo.pushed_at
        self.primaryLanguage = {"name": repo.language} if repo.language else None

    @property
    def diskUsage(self) -> int:
        return self.repo.size_kb

    @property
    def owner(self) -> OrganizationNode:
        return OrganizationNode(self.ctx.state.org, self.ctx.base)

    @property
    def defaultBranchRef(self) -> dict[str, Any] | None:
        if not self.repo.files:
            return None   # an empty repository has no branch
        name = self.repo.default_branch
        return {"id": node_id("Ref", f"{self.repo.id}:{name}"), "name": name, "prefix": "refs/heads/",
                "target": CommitNode(self)}

    def object(self, info: Any, expression: str | None = None, oid: str | None = None) -> Any:
        repo = self.repo
        if oid is not None:
            return self._by_oid(oid.lower())
        if expression is None:
            return None
        ref, sep, path = expression.partition(":")
        if not sep:
            return self._by_oid(ref.lower()) or (CommitNode(self) if self._is_head(ref) else None)
        if not self._is_head(ref or "HEAD") or not repo.files:
            return None
        path = path.strip("/")
        file = repo.file(path) if path else None
        if file is not None:
            return BlobNode(file, self)
        try:
            return TreeNode(path, repo.tree_sha(path), self)
        except KeyError:
            return None

    def _is_head(self, ref: str) -> bool:
        b = self.repo.default_branch
        return ref in (b, f"refs/heads/{b}", "HEAD") or (bool(self.repo.files) and ref == self.repo.commit_sha)

    def _by_oid(self, oid: str) -> Any:
        repo = self.repo
        if not repo.files:
            return None
        file = self.ctx.state.repo_blobs(repo).get(oid)
        if file is not None:
            return BlobNode(file, self)
        path = repo.tree_path(oid)
        if path is not None:
            return TreeNode(path, oid, self)
        return CommitNode(self) if oid == repo.commit_sha else None


class _GitObject:
    typename = ""

    def __init__(self, oid: str, repo_node: RepositoryNode) -> None:
        self.oid, self.abbreviatedOid, self.repository = oid, oid[:7], repo_node
        self.id = node_id(self.typename, f"{repo_node.repo.id}:{oid}")


class CommitNode(_GitObject):
    typename = "Commit"

    def __init__(self, repo_node: RepositoryNode) -> None:
        super().__init__(repo_node.repo.commit_sha, repo_node)
        self.message = f"Simulated head of {repo_node.repo.full_name}"
        self.committedDate = repo_node.repo.pushed_at

    @property
    def tree(self) -> TreeNode:
        return TreeNode("", self.repository.repo.tree_sha(), self.repository)


class TreeNode(_GitObject):
    typename = "Tree"

    def __init__(self, path: str, oid: str, repo_node: RepositoryNode) -> None:
        super().__init__(oid, repo_node)
        self.path = path

    def entries(self, info: Any) -> list[dict[str, Any]]:
        repo_node = self.repository
        repo = repo_node.repo
        out = []
        for e in repo.tree_entries(self.path, recursive=False):
            full = f"{self.path}/{e['path']}" if self.path else e["path"]
            is_tree = e["type"] == "tree"
            obj: Any = TreeNode(full, e["sha"], repo_node) if is_tree else BlobNode(repo.files[full], repo_node)
            ext = None if is_tree or "." not in e["path"] else "." + e["path"].rsplit(".", 1)[1]
            out.append({"name": e["path"], "path": full, "type": e["type"], "mode": int(e["mode"], 8),
                        "oid": e["sha"], "size": e.get("size", 0), "extension": ext, "object": obj})
        return out


class BlobNode(_GitObject):
    typename = "Blob"

    def __init__(self, file: SimFile, repo_node: RepositoryNode) -> None:
        super().__init__(file.sha, repo_node)
        self.file = file
        self.byteSize = file.size
        limit = repo_node.ctx.state.config.graphql_blob_text_limit
        head = file.content[:8000]
        self.isBinary = b"\0" in head or not _is_utf8(file.content)
        self.isTruncated = file.size > limit

    def text(self, info: Any) -> str | None:
        if self.isBinary:
            return None
        state = self.repository.ctx.state
        if not self.isTruncated:    # a cut text is not the blob: the client still has to fetch it
            state.stats.blob_fetches[self.file.sha] += 1
        limit = state.config.graphql_blob_text_limit
        return self.file.content[:limit].decode("utf-8", "ignore")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# ---------------------------------------------------------------------------
# schema

def _not_found(kind: str, what: str) -> GraphQLError:
    return GraphQLError(f"Could not resolve to {kind} {what}.", extensions={"type": "NOT_FOUND"})


def _resolve_organization(_root: Any, info: Any, login: str) -> OrganizationNode:
    ctx: Ctx = info.context
    if login.lower() != ctx.state.org.login.lower():
        raise _not_found("an Organization", f"with the login of '{login}'")
    return OrganizationNode(ctx.state.org, ctx.base)


def _resolve_repository(_root: Any, info: Any, owner: str, name: str, followRenames: bool = True) -> Any:
    ctx: Ctx = info.context
    org = ctx.state.org
    repo = org.repo(name) if owner.lower() == org.login.lower() else None
    if repo is None:
        raise _not_found("a Repository", f"with the name '{owner}/{name}'")
    return RepositoryNode(repo, ctx)


def build_github_schema() -> GraphQLSchema:
    schema = build_schema(SDL)
    query = schema.query_type
    assert query is not None
    query.fields["organization"].resolve = _resolve_organization
    query.fields["repository"].resolve = _resolve_repository
    query.fields["rateLimit"].resolve = lambda _root, info, dryRun=False: info.context.rate
    for name in ("GitObject", "RepositoryOwner"):
        interface = schema.get_type(name)
        assert isinstance(interface, GraphQLInterfaceType), name
        interface.resolve_type = lambda obj, _info, _type: obj.typename
    return schema


SCHEMA = build_github_schema()
CONNECTION_FIELDS = frozenset(
    name for t in SCHEMA.type_map.values() if hasattr(t, "fields") and not t.name.startswith("__")
    for name, f in t.fields.items() if get_named_type(f.type).name.endswith("Connection")
)


# ---------------------------------------------------------------------------
# cost and node limits (GitHub's documented arithmetic)

def _arg_int(field: FieldNode, name: str, variables: dict[str, Any]) -> int | None:
    for arg in field.arguments or ():
        if arg.name.value == name:
            if isinstance(arg.value, IntValueNode):
                return int(arg.value.value)
            if isinstance(arg.value, VariableNode):
                value = variables.get(arg.value.name.value)
                return value if isinstance(value, int) else None
    return None


def analyse(document: Any, operation_name: str | None, variables: dict[str, Any]) -> tuple[int, int, list[dict]]:
    """Return (cost, node count, pagination errors) of the operation to run."""
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    op = next((o for o in ops if operation_name is None or (o.name and o.name.value == operation_name)), None)
    requests = nodes = 0
    errors: list[dict] = []

    def walk(selection_set: SelectionSetNode | None, multiplier: int, path: list[str]) -> None:
        nonlocal requests, nodes
        for sel in selection_set.selections if selection_set else ():
            if isinstance(sel, FieldNode):
                key = sel.alias.value if sel.alias else sel.name.value
                child = multiplier
                if sel.name.value in CONNECTION_FIELDS:
                    first, last = _arg_int(sel, "first", variables), _arg_int(sel, "last", variables)
                    size = first if first is not None else last
                    if size is None:
                        errors.append({"type": "MISSING_PAGINATION_BOUNDARIES", "path": [*path, key],
                                       "message": f"You must provide a `first` or `last` value to properly "
                                                  f"paginate the `{sel.name.value}` connection."})
                        size = 0
                    elif not 0 <= size <= MAX_PAGE:
                        which = "first" if first is not None else "last"
                        errors.append({"type": "EXCESSIVE_PAGINATION", "path": [*path, key],
                                       "message": f"Requesting {size} records on the `{sel.name.value}` "
                                                  f"connection exceeds the `{which}` limit of {MAX_PAGE} records."})
                        size = min(max(size, 0), MAX_PAGE)
                    requests += multiplier
                    nodes += multiplier * size
                    child = multiplier * max(size, 1)
                walk(sel.selection_set, child, [*path, key])
            elif isinstance(sel, InlineFragmentNode):
                walk(sel.selection_set, multiplier, path)
            elif isinstance(sel, FragmentSpreadNode) and sel.name.value in fragments:
                walk(fragments[sel.name.value].selection_set, multiplier, path)

    if op is not None:
        walk(op.selection_set, 1, [op.operation.value])
    if nodes > MAX_NODES:
        errors.append({"type": "MAX_NODE_LIMIT_EXCEEDED", "message":
                       f"This query requests up to {nodes:,} possible nodes which exceeds the maximum limit "
                       f"of {MAX_NODES:,}."})
    return max(1, int(requests / 100 + 0.5)), nodes, errors


def _github_error(err: GraphQLError) -> dict[str, Any]:
    out = err.formatted
    ext = dict(out.pop("extensions", {}) or {})
    shaped: dict[str, Any] = {}
    if "type" in ext:
        shaped["type"] = ext.pop("type")
    shaped.update(out)
    if ext:
        shaped["extensions"] = ext
    return shaped


# ---------------------------------------------------------------------------
# the endpoint

@lru_cache(maxsize=512)
def _parsed_and_validated(query: str) -> tuple[Any, tuple[dict[str, Any], ...]]:
    """The document of ``query`` and its validation errors, kept by query text.

    A client batching files sends the same text again and again (the files are in the
    variables), and parsing and validating a query of a hundred aliases costs graphql-core
    tens of milliseconds: without this the simulator's CPU, not the limits it models,
    would bound a scan. Documents are not mutated by execution.
    """
    try:
        document = parse(query)
    except GraphQLError as exc:
        return None, (_github_error(exc),)
    return document, tuple(_github_error(e) for e in validate(SCHEMA, document))


def _errors(errors: list[dict[str, Any]]) -> Response:
    return json_response({"errors": errors})


async def graphql_endpoint(request: Request) -> Response:
    state = request.app.state.sim
    ident = request.state.identity
    stats = state.stats
    stats.graphql_queries += 1
    try:
        payload = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return json_response({"message": "Problems parsing JSON", "documentation_url": DOCS}, status=400)
    if not isinstance(payload, dict):
        payload = {}
    query, variables, op_name = payload.get("query"), payload.get("variables") or {}, payload.get("operationName")
    errors: list[dict[str, Any]] = []
    document = None
    cost = nodes = 1
    if not isinstance(query, str):
        errors = [{"message": "A query attribute must be specified and must be a string."}]
    elif not isinstance(variables, dict):
        errors = [{"message": "Variables are invalid JSON."}]
    else:
        document, found = _parsed_and_validated(query)
        errors = list(found)
        if document is not None and not errors:
            cost, nodes, errors = analyse(document, op_name, variables)

    now = state.clock()
    bucket = state.limiter.bucket(ident, "graphql")
    if bucket.remaining(now) < cost:
        stats.limit_responses["primary"] += 1
        return _errors([{"type": "RATE_LIMITED", "code": "graphql_rate_limit",
                         "message": f"API rate limit already exceeded for user ID {ident.user_id}."}])
    bucket.take(now, cost)
    stats.points_used["graphql"] += cost
    if errors:
        return _errors(errors)

    assert document is not None, "every path that leaves the document unparsed records an error"
    rate = {"cost": cost, "limit": bucket.limit, "nodeCount": nodes, "remaining": bucket.remaining(now),
            "used": bucket.used_now(now), "resetAt": _iso(bucket.reset_time(now), state.config.time_scale != 1.0)}
    result = execute(SCHEMA, document, context_value=Ctx(state, base_url(request), rate),
                     variable_values=variables, operation_name=op_name)
    assert not hasattr(result, "__await__"), "resolvers are synchronous"
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        body["errors"] = [_github_error(e) for e in result.errors]
    encoded = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    if len(encoded) > state.config.graphql_response_limit_bytes:
        rid = request.state.request_id
        return json_response({"data": None, "errors": [{"message": (
            "Something went wrong while executing your query. This may be the result of a timeout, or it "
            f"could be a GitHub bug. Please include `{rid}` when reporting this issue.")}]}, status=502)
    return Response(encoded, media_type="application/json; charset=utf-8")

