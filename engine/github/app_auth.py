"""Authenticating as a GitHub App installation.

Org-scale tools run as a GitHub App rather than a person's token: the App's
installation on an org has its own rate limits (5,000 an hour plus 50 per
repository and per user over 20, up to 12,500; 15,000 on GitHub Enterprise
Cloud) and its own audit trail. The flow is GitHub's:

1. a JWT signed RS256 with the App's private key (``iss`` = the App id,
   ``iat`` a minute in the past for clock drift, ``exp`` nine minutes ahead:
   GitHub refuses more than ten) — PyJWT with ``cryptography`` signs it;
2. the installation: ``--installation-id``, or discovered from the org with
   ``GET /orgs/{org}/installation``;
3. ``POST /app/installations/{id}/access_tokens`` exchanges the JWT for an
   installation token that expires after an hour; :class:`InstallationAuth`
   hands the client that token and fetches a new one before it expires (a
   tenth of its lifetime ahead, at most five minutes), or at once when the
   API answers 401.

Secrets: the private key (the whole PEM and each of its lines), every JWT and
every installation token are registered with :func:`register_secret`, so
logs and error texts are scrubbed of them; none is ever put in a message,
a ``repr``, the run's spec or the database. Error messages quote the server's
message through :func:`engine.safetext.visible` and :func:`redact`.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from engine.errors import AuthError, InputError
from engine.github.auth import redact, register_secret
from engine.safetext import visible

JWT_BACKDATE_S = 60            # GitHub: set iat 60 s in the past to allow for clock drift
JWT_LIFETIME_S = 540           # GitHub refuses exp more than 10 minutes after iat
MAX_REFRESH_AHEAD_S = 300.0    # refresh an installation token at most this long before it expires
REFRESH_SHARE = 0.1            # ...and at least this share of its lifetime ahead


def load_private_key(path: str | Path) -> str:
    """The App's PEM private key from ``path``; InputError naming the file when it is not one."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    p = Path(path)
    try:
        pem = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise InputError(f"{p}: cannot read the GitHub App private key ({reason})") from None
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise InputError(f"{p}: not a PEM private key (GitHub App keys are RSA, '-----BEGIN RSA PRIVATE "
                         "KEY-----')") from None
    _register_pem(pem)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InputError(f"{p}: not an RSA private key (GitHub Apps sign with RS256)")
    return pem


def _register_pem(pem: str) -> None:
    register_secret(pem.strip())
    for line in pem.splitlines():
        if not line.startswith("-----"):
            register_secret(line.strip())


def app_jwt(app_id: int, private_key_pem: str, now: float) -> str:
    """A JWT for the App, valid from a minute ago for nine minutes (GitHub allows ten)."""
    import jwt

    token = jwt.encode({"iat": int(now) - JWT_BACKDATE_S, "exp": int(now) + JWT_LIFETIME_S, "iss": str(app_id)},
                       private_key_pem, algorithm="RS256")
    register_secret(token)
    return token


def _expiry(value: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _server_message(response: httpx.Response) -> str:
    try:
        message = str(response.json().get("message", ""))
    except (ValueError, AttributeError):
        message = ""
    return redact(visible(message[:200])) or f"HTTP {response.status_code}"


class InstallationAuth:
    """Installation tokens for one App installation, refreshed before they expire.

    Give it to :class:`~engine.github.client.GitHubClient` (``auth=`` or
    :meth:`~engine.github.client.GitHubClient.use_auth`): the client asks
    :meth:`token` before every attempt. Failures raise
    :class:`~engine.errors.AuthError` (a run stops instead of storming the API);
    :meth:`prepare` turns them into one-line :class:`~engine.errors.InputError`
    before a run starts.
    """

    def __init__(self, app_id: int, private_key_pem: str, *, installation_id: int | None = None,
                 org: str | None = None, clock: Callable[[], float] = time.time) -> None:
        if installation_id is None and not org:
            raise InputError("--app-id needs --installation-id, or an --org whose installation to use")
        _register_pem(private_key_pem)
        self.app_id = app_id
        self.installation_id = installation_id
        self.org = org
        self._key = private_key_pem
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self.expires_at: float | None = None
        self.tokens_issued = 0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"InstallationAuth(app_id={self.app_id}, installation_id={self.installation_id}, org={self.org!r})"

    async def token(self, http: httpx.AsyncClient, api_url: str, *, refresh: bool = False) -> str:
        """A valid installation token; a new one when it is due (or ``refresh``)."""
        stale = self._token
        async with self._lock:
            if self._token is not None and self._clock() < self._refresh_at and not (refresh and self._token == stale):
                return self._token
            if self.installation_id is None:
                self.installation_id = await self._discover(http, api_url)
            await self._exchange(http, api_url)
            assert self._token is not None
            return self._token

    async def prepare(self, api_url: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        """Get the first token now, so a wrong key or an unknown installation is a one-line
        InputError before anything is created."""
        async with httpx.AsyncClient(transport=transport, timeout=30.0,
                                     headers={"Accept": "application/vnd.github+json",
                                              "X-GitHub-Api-Version": "2022-11-28"}) as http:
            try:
                await self.token(http, api_url.rstrip("/"))
            except AuthError as exc:
                raise InputError(str(exc)) from None
            except httpx.HTTPError as exc:
                raise InputError(f"GitHub App {self.app_id}: cannot reach {api_url} ({type(exc).__name__})") from None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {app_jwt(self.app_id, self._key, self._clock())}",
                "Accept": "application/vnd.github+json"}

    def _refused(self, response: httpx.Response, what: str) -> AuthError:
        message = _server_message(response)
        if response.status_code == 401:
            return AuthError(f"GitHub App {self.app_id}: the API refused the App's JWT ({message}); check --app-id "
                             f"and that --private-key is this App's key", status_code=401)
        return AuthError(f"GitHub App {self.app_id}: {what} ({response.status_code}: {message})",
                         status_code=response.status_code)

    async def _discover(self, http: httpx.AsyncClient, api_url: str) -> int:
        url = f"{api_url.rstrip('/')}/orgs/{quote(self.org or '', safe='')}/installation"
        response = await http.get(url, headers=self._headers())
        if response.status_code == 200:
            try:
                return int(response.json()["id"])
            except (ValueError, KeyError, TypeError):
                raise AuthError(f"GitHub App {self.app_id}: unreadable installation of org "
                                f"'{visible(self.org or '')}'", status_code=200) from None
        if response.status_code == 404:
            raise AuthError(f"GitHub App {self.app_id} is not installed on org '{visible(self.org or '')}' "
                            "(install it there, or pass --installation-id)", status_code=404)
        raise self._refused(response, f"cannot find its installation on org '{visible(self.org or '')}'")

    async def _exchange(self, http: httpx.AsyncClient, api_url: str) -> None:
        url = f"{api_url.rstrip('/')}/app/installations/{int(self.installation_id or 0)}/access_tokens"
        response = await http.post(url, headers=self._headers())
        if response.status_code == 404:
            raise AuthError(f"GitHub App {self.app_id}: no installation {self.installation_id} "
                            "(check --installation-id)", status_code=404)
        if response.status_code != 201:
            raise self._refused(response, f"cannot get a token for installation {self.installation_id}")
        try:
            body = response.json()
            token = str(body["token"])
        except (ValueError, KeyError, TypeError):
            raise AuthError(f"GitHub App {self.app_id}: unreadable token answer", status_code=201) from None
        register_secret(token)
        now = self._clock()
        expires_at = _expiry(body.get("expires_at")) or now + 3600.0
        ahead = min(MAX_REFRESH_AHEAD_S, REFRESH_SHARE * max(0.0, expires_at - now))
        self._token, self.expires_at, self._refresh_at = token, expires_at, expires_at - ahead
        self.tokens_issued += 1


# -- the CLI's side ------------------------------------------------------------------------

def add_app_arguments(parser: argparse.ArgumentParser) -> None:
    """``--app-id``, ``--private-key`` and ``--installation-id`` on a command that talks to GitHub."""
    group = parser.add_argument_group("GitHub App authentication (instead of a token)")
    group.add_argument("--app-id", type=int, help="authenticate as this GitHub App's installation")
    group.add_argument("--private-key", metavar="FILE", help="the App's private key (PEM)")
    group.add_argument("--installation-id", type=int,
                       help="the installation to use (default: the App's installation on --org)")


class AppInstallations:
    """The App installations a command uses: one, or one per ``--org`` (each org then gets a
    client of its own, paced by its own installation's buckets, behind an
    :class:`~engine.github.router.OwnerRouter`)."""

    def __init__(self, by_owner: dict[str | None, InstallationAuth]) -> None:
        self.by_owner = by_owner

    async def prepare(self, api_url: str) -> None:
        """Every installation's first token, now: a bad key or installation is one line, exit 2."""
        for auth in self.by_owner.values():
            await auth.prepare(api_url)

    def attach(self, client: Any, another: Callable[[], Any]) -> Any:
        """``client`` authenticated as the installation, or a router over one client per org
        (``client`` for the first org, ``another()`` for each of the others)."""
        clients: dict[str, Any] = {}
        for index, (owner, auth) in enumerate(self.by_owner.items()):
            each = client if index == 0 else another()
            each.use_auth(auth)
            clients[owner or ""] = each
        if len(clients) == 1:
            return client
        from engine.github.router import OwnerRouter

        return OwnerRouter(clients)


def credentials_from_args(args: argparse.Namespace, orgs: list[str] | None = None) -> AppInstallations | None:
    """The App installations the flags describe, or None when no ``--app-id`` was given.

    ``orgs`` stands in for ``--org`` when the command has none (``resume`` and ``replay`` take
    the orgs of the run they continue)."""
    return app_credentials(getattr(args, "app_id", None), getattr(args, "private_key", None),
                           getattr(args, "installation_id", None), getattr(args, "org", None) or orgs)


def app_credentials(app_id: int | None, key_file: str | None, installation_id: int | None,
                    orgs: list[str] | None) -> AppInstallations | None:
    """The App installations of an App id, its private key file and an installation id or orgs
    (None when no App id is given); errors are named by the flags that give them."""
    if app_id is None:
        if key_file or installation_id is not None:
            raise InputError("--private-key and --installation-id need --app-id")
        return None
    if not key_file:
        raise InputError("--app-id needs --private-key FILE (the App's PEM private key)")
    orgs = list(dict.fromkeys(orgs or []))
    key = load_private_key(key_file)
    if installation_id is not None:
        if len(orgs) > 1:
            raise InputError("--installation-id names one installation: give one --org with it, or none "
                             "(each --org's installation is found by itself)")
        return AppInstallations({orgs[0] if orgs else None: InstallationAuth(app_id, key,
                                                                             installation_id=installation_id)})
    if not orgs:
        raise InputError("--app-id needs --installation-id, or an --org whose installation to use")
    return AppInstallations({org: InstallationAuth(app_id, key, org=org) for org in orgs})
