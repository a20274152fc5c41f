"""Where the GitHub token comes from, and keeping it out of every text we emit.

The token is looked up in the order a user expects from other GitHub tools:
``--token``, then ``GITHUB_TOKEN``, then ``GH_TOKEN``, then the gh CLI's
``gh auth token`` (only when ``gh`` is installed; a short timeout and every
failure ignored, because a missing or logged-out gh must never break a run that
works without a token, such as one against the simulator).

A token must never reach SQLite, logs, reports, artifacts or exception text.
The client builds its messages without it, but third-party code (httpx, aiohttp,
a job kind formatting an error) can still echo it, so every token the process
resolves is registered here and :func:`redact` scrubs registered tokens plus
anything shaped like a GitHub token (``ghp_...``, ``github_pat_...``, a
``Bearer``/``token`` authorization value). :class:`RedactingFilter` applies the
same scrub to log records, wherever they come from.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping

REDACTED = "***"
GH_CLI_TIMEOUT_S = 3.0
MIN_SECRET_LEN = 6

_known_secrets: set[str] = set()

# Classic and fine-grained personal tokens, OAuth, user-to-server, server-to-server
# and refresh tokens; plus the value of an Authorization header echoed in text.
_TOKEN_SHAPES = re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b")
_AUTH_VALUE = re.compile(r"(?i)(\bbearer\s+|\bauthorization:\s*(?:token|bearer)\s+)[^\s'\",]+")


def register_secret(secret: str | None) -> None:
    """Remember a secret so :func:`redact` and :class:`RedactingFilter` scrub it.

    Strings shorter than ``MIN_SECRET_LEN`` are not registered (no GitHub token
    is that short, and scrubbing "tok" from every log line would mangle them);
    :func:`redact` still scrubs a short token passed to it explicitly.
    """
    if secret and len(secret) >= MIN_SECRET_LEN:
        _known_secrets.add(secret)


def redact(text: str, token: str | None = None) -> str:
    """``text`` with ``token``, every registered secret and token-shaped strings
    replaced by ``***``."""
    if not text:
        return text
    secrets = set(_known_secrets)
    if token:
        secrets.add(token)
    for secret in sorted(secrets, key=len, reverse=True):   # longest first: no partial leftovers
        text = text.replace(secret, REDACTED)
    text = _TOKEN_SHAPES.sub(REDACTED, text)
    return _AUTH_VALUE.sub(lambda m: m.group(1) + REDACTED, text)


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs tokens from the formatted message.

    Attach it to a handler (it then sees records of every logger), or to a
    logger. It formats the message once, redacts it and drops the args, so a
    token passed as a ``%s`` argument is caught too.
    """

    def __init__(self, token: str | None = None, name: str = "") -> None:
        super().__init__(name)
        self._token = token
        register_secret(token)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:   # a broken format string is not ours to fix; still scrub the template
            message = str(record.msg)
        record.msg = redact(message, self._token)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._token)
        return True


def _token_from_gh_cli(timeout: float = GH_CLI_TIMEOUT_S) -> str | None:
    gh = shutil.which("gh")
    if gh is None:
        return None
    try:
        done = subprocess.run(
            [gh, "auth", "token"], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    token = done.stdout.strip()
    return token if done.returncode == 0 and token else None


def resolve_token(cli_token: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The token to use: ``--token``, ``GITHUB_TOKEN``, ``GH_TOKEN`` or ``gh auth token``.

    Returns None when none is available (anonymous access, or the simulator).
    The token found is registered for redaction.
    """
    env = os.environ if env is None else env
    for candidate in (cli_token, env.get("GITHUB_TOKEN"), env.get("GH_TOKEN")):
        if candidate and candidate.strip():
            token = candidate.strip()
            register_secret(token)
            return token
    from_gh = _token_from_gh_cli()
    register_secret(from_gh)
    return from_gh
