"""GitHub App endpoints of the simulator: JWT-authenticated App calls, installation tokens,
and the installation rate limits.

Why it is built this way:

* The App authenticates as GitHub documents: a JWT signed RS256 with the App's
  private key (``iss`` the App id, ``exp`` at most ten minutes after ``iat``)
  on ``GET /app/installations``, ``GET /orgs/{org}/installation`` and
  ``POST /app/installations/{id}/access_tokens``; the last returns an
  installation token (``ghs_...``) that expires an hour later (scaled by
  ``time_scale``). The simulator verifies the signature against the App's
  *public* key: the one its config names (``app.public_key_pem``), else one it
  generates at start and serves at ``GET /_sim/app`` (side door, with the
  private half, for demos and benchmarks).
* Time claims are checked against the simulator's clock, not the wall clock, so
  a simulator on a virtual or scaled clock judges the JWT like GitHub would.
* An installation token counts against its *installation's* buckets (several
  tokens of one installation share them): 5,000 requests an hour plus 50 per
  repository and per user over 20, at most 12,500; 15,000 on GitHub
  Enterprise Cloud (``app.enterprise_cloud``). An expired or unknown ``ghs_``
  token is a 401, so a client that does not refresh is caught.
* App calls bypass the rate-limit pipeline (GitHub limits them separately) but
  are counted in ``/_sim/stats`` like any request.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.errors import InputError
from engine.sim import rest
from engine.sim.limits import Identity

APP_DOCS = "https://docs.github.com/rest/apps/apps"
JWT_DOCS = "https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app"
MAX_JWT_LIFETIME_S = 600          # GitHub: exp no more than 10 minutes after iat
CLOCK_LEEWAY_S = 60
TOKEN_LIFETIME_S = 3600
APP_KEYS = ("id", "slug", "public_key_pem", "installation_id", "users", "enterprise_cloud", "limit")


@dataclass
class SimAppConfig:
    """``app:`` in the simulator's config."""

    id: int = 1
    slug: str = "batchdeck-sim"
    public_key_pem: str | None = None     # None: a key pair is generated at start
    installation_id: int = 42             # the installation on the simulator's org
    users: int = 0                        # users of the org (raise the installation limit past 20)
    enterprise_cloud: bool = False        # GitHub Enterprise Cloud: 15,000 an hour
    limit: int | None = None              # an hourly limit of the benches' choosing (None: GitHub's formula)


def app_config_from_dict(data: Any, source: str) -> SimAppConfig:
    if not isinstance(data, Mapping):
        raise InputError(f"{source}: key 'app': expected a mapping, got {data!r}")
    for key in data:
        if key not in APP_KEYS:
            raise InputError(f"{source}: unknown key 'app.{key}' (known: {', '.join(APP_KEYS)})")
    cfg = SimAppConfig()
    for key in ("id", "installation_id", "users", "limit"):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "users" else 1):
                raise InputError(f"{source}: key 'app.{key}': expected a positive integer, got {value!r}")
            setattr(cfg, key, value)
    if "slug" in data:
        if not isinstance(data["slug"], str) or not data["slug"]:
            raise InputError(f"{source}: key 'app.slug': expected a non-empty string")
        cfg.slug = data["slug"]
    if "enterprise_cloud" in data:
        if not isinstance(data["enterprise_cloud"], bool):
            raise InputError(f"{source}: key 'app.enterprise_cloud': expected true or false")
        cfg.enterprise_cloud = data["enterprise_cloud"]
    if data.get("public_key_pem") is not None:
        try:
            _load_public_key(data["public_key_pem"])
        except (TypeError, ValueError):
            raise InputError(f"{source}: key 'app.public_key_pem': not a PEM RSA public key") from None
        cfg.public_key_pem = data["public_key_pem"]
    return cfg


def _load_public_key(pem: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA key")
    return key


def generate_key_pair() -> tuple[str, str]:
    """A fresh RSA key pair as (private PEM, public PEM), like the one GitHub makes for an App."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def installation_limit(repos: int, users: int, enterprise_cloud: bool) -> int:
    """GitHub's hourly limit for an installation (REST core and GraphQL points alike)."""
    if enterprise_cloud:
        return 15_000
    return min(12_500, 5_000 + 50 * max(0, repos - 20) + 50 * max(0, users - 20))


@dataclass
class IssuedToken:
    installation_id: int
    expires_at: float


@dataclass
class SimApps:
    """The App's key, its installation on the simulator's org, and the tokens issued."""

    config: SimAppConfig
    org_login: str
    org_id: int
    repos: int
    private_key_pem: str | None = None
    tokens: dict[str, IssuedToken] = field(default_factory=dict)
    _public_key: Any = None

    def public_key(self) -> Any:
        if self._public_key is None:
            if self.config.public_key_pem is None:
                self.private_key_pem, public = generate_key_pair()
            else:
                public = self.config.public_key_pem
            self._public_key = _load_public_key(public)
        return self._public_key

    @property
    def limit(self) -> int:
        if self.config.limit is not None:
            return self.config.limit
        return installation_limit(self.repos, self.config.users, self.config.enterprise_cloud)

    # -- tokens in the request pipeline -----------------------------------------------

    def rejects(self, token: str | None, now: float) -> bool:
        """An installation token that was never issued or has expired: 401."""
        if not token or not token.startswith("ghs_"):
            return False
        issued = self.tokens.get(token)
        return issued is None or now >= issued.expires_at

    def identity(self, token: str | None, ip: str) -> Identity | None:
        """The installation a token belongs to, as a rate-limit identity (None: not one of ours)."""
        issued = self.tokens.get(token or "")
        if issued is None:
            return None
        return Identity(key=f"inst:{issued.installation_id}", user_id=900_000_000 + issued.installation_id, ip=ip,
                        core_limit=self.limit)

    # -- the JWT ------------------------------------------------------------------------

    def verify_jwt(self, header: str | None, now: float) -> str | None:
        """None when the request carries a valid App JWT, else GitHub's message for it."""
        import jwt

        scheme, _, value = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return "A JSON web token could not be decoded"
        try:
            claims = jwt.decode(value.strip(), self.public_key(), algorithms=["RS256"],
                                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                                         "require": ["iat", "exp", "iss"]})
        except jwt.PyJWTError:
            return "A JSON web token could not be decoded"
        if str(claims["iss"]) != str(self.config.id):
            return "Integration not found"
        iat, exp = float(claims["iat"]), float(claims["exp"])
        if exp - iat > MAX_JWT_LIFETIME_S + 1:
            return "'Expiration time' claim ('exp') is too far in the future"
        if exp <= now:
            return "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
        if iat > now + CLOCK_LEEWAY_S:
            return "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
        return None

    def issue(self, installation_id: int, now: float, time_scale: float) -> tuple[str, float]:
        token = "ghs_" + secrets.token_urlsafe(27).replace("-", "A").replace("_", "b")[:36]
        expires_at = now + TOKEN_LIFETIME_S * time_scale
        self.tokens[token] = IssuedToken(installation_id, expires_at)
        return token, expires_at


def _iso(ts: float, scaled: bool) -> str:
    base = rest.iso(ts)
    if not scaled:
        return base
    return base[:-1] + f".{int((ts % 1) * 1000):03d}Z"   # scaled hours need sub-second expiry


def _installation_json(request: Request, apps: SimApps) -> dict[str, Any]:
    base = rest.base_url(request)
    inst = apps.config.installation_id
    return {
        "id": inst, "account": rest.user_json(base, apps.org_login, apps.org_id, "Organization"),
        "repository_selection": "all",
        "access_tokens_url": f"{base}/app/installations/{inst}/access_tokens",
        "repositories_url": f"{base}/installation/repositories",
        "html_url": f"{base}/organizations/{apps.org_login}/settings/installations/{inst}",
        "app_id": apps.config.id, "app_slug": apps.config.slug, "target_id": apps.org_id,
        "target_type": "Organization", "permissions": {"contents": "read", "metadata": "read", "issues": "write"},
        "events": [], "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
        "single_file_name": None, "has_multiple_single_files": False, "single_file_paths": [],
        "suspended_by": None, "suspended_at": None,
    }


def _app_call(name: str, handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        state = request.app.state.sim
        state.stats.requests_total += 1
        state.stats.requests[name] += 1
        problem = state.apps.verify_jwt(request.headers.get("authorization"), state.clock())
        if problem is not None:
            response = rest.json_response({"message": problem, "documentation_url": JWT_DOCS, "status": "401"},
                                          status=401)
        else:
            response = await handler(request, state)
        state.stats.statuses[response.status_code] += 1
        return response
    return endpoint


def _not_found() -> Response:
    return rest.json_response({"message": "Not Found", "documentation_url": APP_DOCS, "status": "404"}, status=404)


async def _list_installations(request: Request, state: Any) -> Response:
    return rest.json_response([_installation_json(request, state.apps)])


async def _org_installation(request: Request, state: Any) -> Response:
    if request.path_params["org"].lower() != state.apps.org_login.lower():
        return _not_found()
    return rest.json_response(_installation_json(request, state.apps))


async def _access_token(request: Request, state: Any) -> Response:
    apps: SimApps = state.apps
    if request.path_params["id"] != str(apps.config.installation_id):
        return _not_found()
    token, expires_at = apps.issue(apps.config.installation_id, state.clock(), state.config.time_scale)
    return rest.json_response({"token": token, "expires_at": _iso(expires_at, state.config.time_scale != 1.0),
                               "permissions": {"contents": "read", "metadata": "read", "issues": "write"},
                               "repository_selection": "all"}, status=201)


async def _sim_app(request: Request) -> Response:
    apps: SimApps = request.app.state.sim.apps
    apps.public_key()
    return rest.json_response({"app_id": apps.config.id, "installation_id": apps.config.installation_id,
                               "org": apps.org_login, "private_key_pem": apps.private_key_pem,
                               "installation_limit": apps.limit})


def routes() -> list[Route]:
    """The App routes (to go before the simulator's catch-all)."""
    return [
        Route("/app/installations", _app_call("GET /app/installations", _list_installations), methods=["GET"]),
        Route("/orgs/{org}/installation", _app_call("GET /orgs/{org}/installation", _org_installation),
              methods=["GET"]),
        Route("/app/installations/{id}/access_tokens",
              _app_call("POST /app/installations/{id}/access_tokens", _access_token), methods=["POST"]),
        Route("/_sim/app", _sim_app, methods=["GET"]),
    ]
