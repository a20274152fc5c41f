"""Several GitHub clients behind the one interface a job uses, chosen by the owner a request names.

A scan of several orgs as a GitHub App uses one installation per org, and each
installation has its own rate-limit buckets and secondary limits. Giving each
org its own :class:`~engine.github.client.GitHubClient` (its own token, pacer,
lanes and concurrency slots) paces each org by its own installation's buckets,
in parallel; :class:`OwnerRouter` sends each call to the client of the owner
in its path (``/repos/{owner}/...``, ``/orgs/{owner}/...``,
``/users/{owner}/...``) or arguments, and splits a GraphQL file query that
spans owners into one query per owner. Calls that name no owner (search, a
bare GraphQL query) go to the default client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from engine.github.client import GitHubClient, Response
from engine.github.ratelimit import BudgetOutlook
from engine.models import LaneView, RateLimitGauge

_OWNER_IN_PATH = re.compile(r"/(?:repos|orgs|users)/([^/?#]+)")


class OwnerRouter:
    """Routes by owner to one client each (see the module docstring)."""

    def __init__(self, clients: Mapping[str, GitHubClient], default: str | None = None) -> None:
        if not clients:
            raise ValueError("OwnerRouter needs at least one client")
        self._clients = {owner.lower(): client for owner, client in clients.items()}
        self._default = self._clients[(default or next(iter(clients))).lower()]

    def client_for(self, owner: str | None) -> GitHubClient:
        return self._clients.get((owner or "").lower(), self._default)

    def _for_path(self, path_or_url: str) -> GitHubClient:
        match = _OWNER_IN_PATH.search(urlsplit(path_or_url).path or path_or_url)
        return self.client_for(unquote(match.group(1)) if match else None)

    # -- what the runner reads -----------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self._default.api_url

    @property
    def authenticated(self) -> bool:
        return all(client.authenticated for client in self._clients.values())

    @property
    def cache(self) -> Any:
        return self._default.cache

    @property
    def counters(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for client in self._clients.values():
            for name, n in client.counters.items():
                total[name] = total.get(name, 0) + n
        return total

    def bind(self, **kw: Any) -> None:
        for client in self._clients.values():
            client.bind(**kw)

    def rate_limits(self) -> list[RateLimitGauge]:
        """Every client's buckets, each resource named after its owner (``acme core``)."""
        return [dataclasses.replace(g, resource=f"{owner} {g.resource}")
                for owner, client in self._clients.items() for g in client.rate_limits()]

    def lanes(self) -> list[LaneView]:
        return [dataclasses.replace(v, name=f"{owner} {v.name}")
                for owner, client in self._clients.items() for v in client.lanes()]

    def budget_outlook(self, requests: int, resource: str = "core", owner: str | None = None) -> BudgetOutlook:
        """:meth:`GitHubClient.budget_outlook` of ``owner``'s client (the default client's without one)."""
        return self.client_for(owner).budget_outlook(requests, resource)

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def __aenter__(self) -> OwnerRouter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- requests -------------------------------------------------------------------------

    async def request(self, method: str, path_or_url: str, **kw: Any) -> Response:
        return await self._for_path(path_or_url).request(method, path_or_url, **kw)

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None, lane: str = "read") -> Any:
        return await self._for_path(path).get_json(path, params, lane)

    async def paginate(self, path: str, params: Mapping[str, Any] | None = None,
                       lane: str = "read") -> AsyncIterator[dict]:
        async for item in self._for_path(path).paginate(path, params, lane):
            yield item

    async def list_org_repos(self, org: str) -> list[dict]:
        return await self.client_for(org).list_org_repos(org)

    async def list_user_repos(self, user: str) -> list[dict]:
        return await self.client_for(user).list_user_repos(user)

    async def get_repo(self, owner: str, repo: str) -> dict:
        return await self.client_for(owner).get_repo(owner, repo)

    async def get_tree(self, owner: str, repo: str, ref: str, recursive: bool = True) -> list[dict]:
        return await self.client_for(owner).get_tree(owner, repo, ref, recursive)

    async def get_blob(self, owner: str, repo: str, sha: str) -> bytes:
        return await self.client_for(owner).get_blob(owner, repo, sha)

    async def create_issue(self, owner: str, repo: str, title: str, body: str | None = None, **fields: Any) -> dict:
        return await self.client_for(owner).create_issue(owner, repo, title, body, **fields)

    async def update_issue(self, owner: str, repo: str, number: int, **fields: Any) -> dict:
        return await self.client_for(owner).update_issue(owner, repo, number, **fields)

    async def list_issues(self, owner: str, repo: str, **params: Any) -> list[dict]:
        return await self.client_for(owner).list_issues(owner, repo, **params)

    async def search_issues(self, query: str, **params: Any) -> list[dict]:
        return await self._default.search_issues(query, **params)

    async def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict:
        return await self._default.graphql(query, variables)

    async def get_file_texts_graphql(self, requests: list[tuple[str, str, str]]) -> list[str | None | Exception]:
        """One query per owner (each through its own installation), answers in the order asked."""
        by_client: dict[int, tuple[GitHubClient, list[int]]] = {}
        for index, (owner, _, _) in enumerate(requests):
            client = self.client_for(owner)
            by_client.setdefault(id(client), (client, []))[1].append(index)
        groups = list(by_client.values())
        answers = await asyncio.gather(*(client.get_file_texts_graphql([requests[i] for i in indexes])
                                         for client, indexes in groups))
        out: list[str | None | Exception] = [None] * len(requests)
        for (_, indexes), texts in zip(groups, answers, strict=True):
            for index, text in zip(indexes, texts, strict=True):
                out[index] = text
        return out
