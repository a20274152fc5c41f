"""The GitHub client a run needs, built by the engine when the run starts (new, resumed, replayed).

:func:`github_services` is a job kind's ``services`` factory (see :mod:`engine.kinds`): it
receives the run, its breakers and counter sink, and the caller's :class:`~engine.kinds.Connection`
(never stored), and returns the run's ``github`` client, already bound to that run (the client
alone records request outcomes on the run's breakers).

Where the client points and who it acts as, in order:

* the API URL: ``Connection.api_url``, else the run's ``spec["api_url"]``, else the config's;
  credentials in the URL's userinfo become the token and never reach the stored URL;
* a GitHub App (``Connection.app_id`` and its private key file; one installation, or the
  installation of each org of the run's ``targets``) or the token;
* without either: a run that was started with credentials refuses to go on anonymously;
  any other run goes ahead only with the caller's consent (``Connection.assume_yes``) unless
  its scope is small, and otherwise raises :class:`Unauthenticated` — an InputError whose
  ``warning`` a terminal shows before asking (``Connection.interactive``), see console/cli.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.kinds import Connection, ServiceRequest, Services
from engine.safetext import scrub_url, split_url_credentials

if TYPE_CHECKING:
    from engine.github.app_auth import AppInstallations

UNAUTHENTICATED_LIMIT = 60          # requests an hour: GitHub's bucket without a token
FEW_REPOS = 5                       # at most this many repositories fit in that bucket
UNAUTHENTICATED_QUESTION = "Scan unauthenticated anyway? [y/N] "

#: how many repositories a run still has to do (None: not known, an org not listed yet)
Scope = Callable[[ServiceRequest], Awaitable[int | None]]


class Unauthenticated(InputError):
    """No credentials, and the run is too large to go ahead without the caller's consent.

    ``str()`` is the refusal (one line, exit 2); ``warning`` says what running anonymously
    means; a caller that may ask (a terminal) asks and starts again with ``assume_yes``."""

    def __init__(self, warning: str) -> None:
        super().__init__("no GitHub token: give --token or GITHUB_TOKEN, or --yes to scan unauthenticated "
                         f"at {UNAUTHENTICATED_LIMIT} requests an hour")
        self.warning = warning


def unauthenticated_warning(repos: int | None) -> str:
    size = "an unknown number of" if repos is None else str(repos)
    return (f"no GitHub token (--token, GITHUB_TOKEN, GH_TOKEN or `gh auth token`): unauthenticated, the API "
            f"allows {UNAUTHENTICATED_LIMIT} requests an hour; {size} repositories to scan")


def split_api_url(url: str) -> tuple[str, str | None]:
    """``url`` without userinfo (secret query values scrubbed too), and the secret its userinfo held."""
    clean, secret = split_url_credentials(url)
    return scrub_url(clean), secret


def app_installations(connection: Connection, orgs: list[str] | None) -> AppInstallations | None:
    """The GitHub App installations the connection names (None: no App)."""
    from engine.github.app_auth import app_credentials

    return app_credentials(connection.app_id, connection.private_key_file, connection.installation_id, orgs)


def make_client(req: ServiceRequest, api_url: str, token: str | None, *, cache: bool = True) -> Any:
    """A client bound to the run: its breakers, its counters, the run database's ETag cache."""
    from engine.github import GitHubClient
    from engine.httpcache import SqliteHttpCache

    return GitHubClient(api_url, token, config=req.config, breakers=req.breakers, on_count=req.count,
                        cache=SqliteHttpCache(req.store) if cache else None,
                        transport=req.connection.extra.get("transport"))


async def github_services(req: ServiceRequest, *, scope: Scope | None = None, cache: bool = True) -> Services:
    """``{"github": client}`` for the run (see the module docstring for what decides it).

    ``scope`` tells how many repositories are left (a small run goes ahead unauthenticated
    without asking); ``cache`` False: no ETag cache (a kind that only writes)."""
    from engine.github.auth import register_secret

    conn, run = req.connection, req.run
    api_url, secret = split_api_url(conn.api_url or run.spec.get("api_url") or req.config.github.api_url)
    register_secret(secret)
    token = conn.token or secret
    app = conn.extra.get("app") or app_installations(conn, (run.spec.get("targets") or {}).get("orgs"))
    if app is not None:
        if "app" not in conn.extra:        # given prepared by a command that checked the key already
            await app.prepare(api_url)      # a wrong key or installation: one line, exit 2
        client = app.attach(make_client(req, api_url, None, cache=cache),
                            lambda: make_client(req, api_url, None, cache=cache))
        return Services(github=client)
    if token is None:
        if run.spec.get("authenticated"):
            raise InputError(f"run {run.id} was started with credentials: give --token (or set GITHUB_TOKEN), "
                             "or the --app-id flags, to continue it; nothing was changed")
        if not conn.assume_yes:
            repos = await scope(req) if scope is not None else None
            if repos is None or repos > FEW_REPOS:
                raise Unauthenticated(unauthenticated_warning(repos))
    return Services(github=make_client(req, api_url, token, cache=cache))
