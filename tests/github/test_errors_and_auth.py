"""Error mapping, token resolution and redaction."""

from __future__ import annotations

import json
import logging
import os
import stat

import aiohttp
import httpx
import pytest

from engine.errors import (
    AuthError,
    ClientError,
    ErrorClass,
    NetworkError,
    RateLimitError,
    RequestTimeoutError,
    SecondaryRateLimitError,
    ServerError,
)
from engine.github.auth import RedactingFilter, redact, resolve_token
from engine.github.errors import error_for_exception, error_for_response, parse_retry_after

API = "https://ghe.example.com/api/v3"
NOW = 1_700_000_000.0
SECONDARY_MSG = ("You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                 "If you reach out to GitHub Support for help, please include the request ID.")


def respond(status, headers=None, message="", now=NOW):
    body = json.dumps({"message": message, "documentation_url": "https://docs.github.com"}).encode()
    return error_for_response(status, httpx.Headers(headers or {}), body, method="GET",
                              url=f"{API}/repos/o/r?page=2", lane="read", api_url=API, had_token=True, now=now)


def test_401_names_the_server_not_the_token():
    error = respond(401, message="Bad credentials")
    assert isinstance(error, AuthError) and error.fatal
    assert str(error) == f"GitHub rejected the token (401 Bad credentials) for {API}"
    assert error.status_code == 401 and error.lane == "read"


def test_primary_limit_carries_its_reset():
    error = respond(403, {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
                          "x-ratelimit-reset": str(NOW + 90), "x-ratelimit-resource": "core"},
                    "API rate limit exceeded for user ID 1.")
    assert type(error) is RateLimitError
    assert error.reset_time == NOW + 90 and error.retry_after == pytest.approx(90)
    assert error.error_class is ErrorClass.RATE_LIMITED and error.status_code == 403


@pytest.mark.parametrize(("status", "headers", "message", "retry_after"), [
    (403, {"retry-after": "30"}, SECONDARY_MSG, 30.0),
    (429, {}, SECONDARY_MSG, None),
    (403, {"x-ratelimit-remaining": "0", "x-ratelimit-limit": "5000", "x-ratelimit-reset": str(NOW + 5)},
     SECONDARY_MSG, None),                                   # the message wins over remaining 0
    (403, {"retry-after": "12"}, "", 12.0),                  # retry-after alone
    (403, {}, "You have triggered an abuse detection mechanism.", None),
    (429, {}, "", None),                                     # an unexplained 429 is throttling
])
def test_secondary_limits_are_told_apart(status, headers, message, retry_after):
    error = respond(status, headers, message)
    assert isinstance(error, SecondaryRateLimitError)
    assert error.error_class is ErrorClass.SECONDARY_LIMITED
    assert error.retry_after == retry_after and error.status_code == status


def test_a_plain_403_is_a_permission_error_and_404_a_client_error():
    forbidden = respond(403, {"x-ratelimit-remaining": "4000", "x-ratelimit-limit": "5000",
                              "x-ratelimit-reset": str(NOW + 5)}, "Resource not accessible by integration")
    assert type(forbidden) is ClientError and "Resource not accessible" in str(forbidden)
    missing = respond(404, message="Not Found")
    assert type(missing) is ClientError and missing.status_code == 404
    assert "GET /api/v3/repos/o/r?page=2" in str(missing)


def test_5xx_is_a_server_error():
    error = respond(502, message="Server Error")
    assert type(error) is ServerError and error.error_class is ErrorClass.SERVER


def test_retry_after_as_an_http_date():
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 20) == pytest.approx(20)
    assert parse_retry_after("soon") is None


@pytest.mark.parametrize(("exc", "expected"), [
    (httpx.ReadTimeout("timed out"), RequestTimeoutError),
    (httpx.ConnectError("refused"), NetworkError),
    (httpx.RemoteProtocolError("peer closed"), NetworkError),
    (ConnectionResetError("reset by peer"), NetworkError),
    (TimeoutError(), RequestTimeoutError),
])
def test_transport_failures(exc, expected):
    error = error_for_exception(exc, method="GET", url=f"{API}/x", lane="read")
    assert type(error) is expected and error.lane == "read"


def test_a_dropped_connection_behind_httpx_aiohttp_is_a_network_error_not_a_timeout():
    # httpx-aiohttp maps aiohttp.ServerDisconnectedError to httpx.ConnectTimeout
    try:
        try:
            raise aiohttp.ServerDisconnectedError()
        except aiohttp.ClientError as inner:
            raise httpx.ConnectTimeout("Server disconnected") from inner
    except httpx.ConnectTimeout as exc:
        error = error_for_exception(exc, method="GET", url=f"{API}/x", lane="read")
    assert type(error) is NetworkError


def test_resolve_token_order(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))                 # no gh on PATH
    env = {"GITHUB_TOKEN": "from-github-token", "GH_TOKEN": "from-gh-token"}
    assert resolve_token("from-cli", env) == "from-cli"
    assert resolve_token(None, env) == "from-github-token"
    assert resolve_token(None, {"GH_TOKEN": "from-gh-token"}) == "from-gh-token"
    assert resolve_token(None, {"GITHUB_TOKEN": "  "}) is None


def _fake_gh(tmp_path, script: str) -> None:
    gh = tmp_path / "gh"
    gh.write_text("#!/bin/sh\n" + script + "\n")
    gh.chmod(gh.stat().st_mode | stat.S_IXUSR)


def test_resolve_token_asks_the_gh_cli_last(monkeypatch, tmp_path):
    _fake_gh(tmp_path, 'if [ "$1 $2" = "auth token" ]; then echo gho_fromtheghcli000000000000; fi')
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ.get("PATH", ""))
    assert resolve_token(None, {}) == "gho_fromtheghcli000000000000"
    assert resolve_token(None, {"GH_TOKEN": "env-wins"}) == "env-wins"


def test_a_failing_gh_cli_is_ignored(monkeypatch, tmp_path):
    _fake_gh(tmp_path, "echo 'not logged in' >&2; exit 1")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert resolve_token(None, {}) is None


def test_redact_scrubs_the_token_and_token_shaped_strings():
    token = "s3cr3t-token-value"
    text = (f"failed with {token}; header Authorization: Bearer {token}; "
            "leaked ghp_abcdefghijklmnopqrstuvwxyz0123456789 and github_pat_11ABCDEFG0123456789_abcdefXYZ")
    clean = redact(text, token)
    assert token not in clean
    assert "ghp_" not in clean and "github_pat_" not in clean
    assert "failed with ***" in clean


def test_logging_filter_scrubs_messages_and_arguments(caplog):
    token = "another-s3cr3t-value"
    logger = logging.getLogger("test.redaction")
    logger.addFilter(RedactingFilter(token))
    with caplog.at_level(logging.INFO, logger="test.redaction"):
        logger.info("calling with %s", token)
        logger.info(f"inline {token}")
    assert caplog.records and all(token not in r.getMessage() for r in caplog.records)
    assert "calling with ***" in caplog.text
