"""GitHub App authentication against the simulator: the JWT, the installation token and its
refresh across expiry, installation rate limits, and one-line errors for a wrong key or an
unknown installation. The App's key pair is generated here, at test time."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from engine.errors import InputError
from engine.github import GitHubClient
from engine.github.app_auth import InstallationAuth, app_jwt, credentials_from_args, load_private_key
from engine.sim.app import create_app
from engine.sim.apps import app_config_from_dict, generate_key_pair, installation_limit
from engine.sim.config import SimConfig
from tests.github.conftest import loop_epoch, run_in_virtual_time
from tests.loopback import loopback_simulator

ROOT = Path(__file__).parents[2]
BASE = "http://sim.test"
SCALE = 0.01                         # an installation token lives 36 s


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return generate_key_pair()


@pytest.fixture(scope="module")
def other_keys() -> tuple[str, str]:
    return generate_key_pair()


def app_sim(public_pem: str, **kw) -> SimConfig:
    return SimConfig(repos=60, seed=4, time_scale=SCALE, app={"id": 77, "public_key_pem": public_pem,
                                                              "installation_id": 9001}, **kw)


def test_installation_rate_limits_follow_githubs_rule():
    assert installation_limit(repos=10, users=5, enterprise_cloud=False) == 5_000
    assert installation_limit(repos=60, users=0, enterprise_cloud=False) == 7_000        # 40 repos over 20
    assert installation_limit(repos=60, users=30, enterprise_cloud=False) == 7_500
    assert installation_limit(repos=400, users=100, enterprise_cloud=False) == 12_500    # the cap
    assert installation_limit(repos=10, users=0, enterprise_cloud=True) == 15_000


def test_a_simulated_installation_limit_can_be_set_for_benches(keys):
    """``app.limit`` replaces GitHub's formula (a bench needs an installation its scan outgrows)."""
    private, public = keys

    async def main() -> None:
        config = SimConfig(repos=60, seed=4, time_scale=SCALE, app={"id": 77, "public_key_pem": public,
                                                                    "installation_id": 9001, "limit": 300})
        app = create_app(config, clock=loop_epoch)
        auth = InstallationAuth(77, private, org="acme", clock=loop_epoch)
        async with GitHubClient(BASE, transport=httpx.ASGITransport(app), time_scale=SCALE, clock=loop_epoch,
                                auth=auth) as client:
            await client.list_org_repos("acme")
            assert {g.limit for g in client.rate_limits() if g.resource == "core"} == {300}

    run_in_virtual_time(main)
    with pytest.raises(InputError, match="app.limit"):
        app_config_from_dict({"limit": 0}, "sim.yaml")


def test_an_app_token_is_refreshed_across_expiry_in_a_long_run(keys):
    """Two scaled hours of steady requests (tokens live 36 s): the client swaps tokens before
    each expires, never sends an expired one, and is counted against the installation's bucket."""
    private, public = keys

    async def main() -> None:
        app = create_app(app_sim(public), clock=loop_epoch)
        auth = InstallationAuth(77, private, org="acme", clock=loop_epoch)
        client = GitHubClient(BASE, transport=httpx.ASGITransport(app), time_scale=SCALE, clock=loop_epoch,
                              auth=auth)
        side = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE)
        async with client, side:
            name = (await client.list_org_repos("acme"))[0]["name"]
            for _ in range(240):                        # one request every 0.3 s for 72 s
                await client.get_repo("acme", name)
                await asyncio.sleep(0.3)
            seen = (await side.get("/_sim/stats")).json()
        assert auth.installation_id == 9001                     # discovered from the org
        assert auth.tokens_issued >= 2
        assert seen["requests"]["POST /app/installations/{id}/access_tokens"] == auth.tokens_issued
        assert seen["bad_credentials"] == 0 and seen["statuses"].get("401", 0) == 0
        assert {g.limit for g in client.rate_limits() if g.resource == "core"} == {7_000}
        assert "ghs_" not in repr(client) + repr(auth)

    run_in_virtual_time(main)


def test_a_revoked_installation_token_is_replaced_once_on_401(keys):
    private, public = keys

    async def main() -> None:
        app = create_app(app_sim(public), clock=loop_epoch)
        auth = InstallationAuth(77, private, installation_id=9001, clock=loop_epoch)
        async with GitHubClient(BASE, transport=httpx.ASGITransport(app), time_scale=SCALE, clock=loop_epoch,
                                auth=auth) as client:
            await client.list_org_repos("acme")
            app.state.sim.apps.tokens.clear()            # revoked on GitHub's side
            assert len(await client.list_org_repos("acme")) == 60
        assert auth.tokens_issued == 2

    run_in_virtual_time(main)


@pytest.mark.parametrize(("app_id", "installation_id", "expected"), [
    (77, 1234, "no installation 1234"),
    (78, 9001, "refused the App's JWT"),
])
async def test_wrong_app_or_installation_is_a_one_line_input_error(keys, app_id, installation_id, expected):
    private, public = keys
    app = create_app(app_sim(public))
    auth = InstallationAuth(app_id, private, installation_id=installation_id)
    with pytest.raises(InputError) as caught:
        await auth.prepare(BASE, transport=httpx.ASGITransport(app))
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert "PRIVATE KEY" not in message and "ey" + "J" not in message     # no key, no JWT


async def test_a_key_that_is_not_the_apps_is_refused(keys, other_keys):
    _, public = keys
    wrong_private, _ = other_keys
    app = create_app(app_sim(public))
    auth = InstallationAuth(77, wrong_private, org="acme")
    with pytest.raises(InputError, match="refused the App's JWT"):
        await auth.prepare(BASE, transport=httpx.ASGITransport(app))


async def test_an_org_without_the_app_is_named(keys):
    private, public = keys
    app = create_app(app_sim(public))
    with pytest.raises(InputError, match="not installed on org 'elsewhere'"):
        await InstallationAuth(77, private, org="elsewhere").prepare(BASE, transport=httpx.ASGITransport(app))


async def test_jwts_are_short_lived_and_an_expired_one_is_refused(keys):
    private, public = keys
    app = create_app(app_sim(public))
    side = httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE)
    async with side:
        import time
        fresh = await side.get("/app/installations", headers={"Authorization": f"Bearer {app_jwt(77, private, time.time())}"})
        old = await side.get("/app/installations",
                             headers={"Authorization": f"Bearer {app_jwt(77, private, time.time() - 700)}"})
    assert fresh.status_code == 200 and fresh.json()[0]["id"] == 9001
    assert old.status_code == 401


def test_bad_key_files_are_named(tmp_path):
    missing = tmp_path / "missing.pem"
    with pytest.raises(InputError, match="missing.pem: cannot read"):
        load_private_key(missing)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(InputError, match="junk.pem: not a PEM private key"):
        load_private_key(junk)


def test_app_flags_need_each_other(tmp_path):
    import argparse

    with pytest.raises(InputError, match="--app-id needs --private-key"):
        credentials_from_args(argparse.Namespace(app_id=1, private_key=None, installation_id=None, org=["a"]))
    key = tmp_path / "k.pem"
    key.write_text(generate_key_pair()[0])
    with pytest.raises(InputError, match="--installation-id names one installation"):
        credentials_from_args(argparse.Namespace(app_id=1, private_key=str(key), installation_id=5, org=["a", "b"]))
    several = credentials_from_args(argparse.Namespace(app_id=1, private_key=str(key), installation_id=None,
                                                       org=["a", "b", "a"]))
    assert list(several.by_owner) == ["a", "b"]
    with pytest.raises(InputError, match="need --app-id"):
        credentials_from_args(argparse.Namespace(app_id=None, private_key="k.pem", installation_id=None, org=[]))
    assert credentials_from_args(argparse.Namespace(app_id=None, private_key=None, installation_id=None,
                                                    org=["a"])) is None


# -- the CLI, against a simulator on loopback --------------------------------------------------

@pytest.fixture(scope="module")
def app_simulator(keys, tmp_path_factory):
    _, public = keys
    config = tmp_path_factory.mktemp("sim") / "sim.yaml"
    config.write_text(yaml.safe_dump({"repos": 8, "seed": 3, "app": {"id": 77, "public_key_pem": public,
                                                                     "installation_id": 9001}}))
    with loopback_simulator("--config", str(config)) as url:
        yield url


def cli_scan(url: str, tmp_path: Path, key: str, *extra: str) -> subprocess.CompletedProcess:
    key_file = tmp_path / "app.pem"
    key_file.write_text(key)
    key_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "GH_TOKEN")}
    return subprocess.run([sys.executable, "-m", "console.cli", "scan", "--headless", "--api-url", url,
                           "--iocs", str(ROOT / "sample_configs" / "iocs" / "shai-hulud-2-packages.csv"),
                           "--db", str(tmp_path / "s.db"), "--app-id", "77", "--private-key", str(key_file),
                           *extra], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_cli_scan_as_an_app_finds_and_keeps_no_secret(app_simulator, keys, tmp_path):
    private, _ = keys
    out = tmp_path / "f.json"
    result = cli_scan(app_simulator, tmp_path, private, "--org", "acme", "--format", "json", "-o", str(out),
                      "--include-archived", "--include-forks")
    assert result.returncode in (0, 1), result.stderr
    tokens_seen = httpx.get(f"{app_simulator}/_sim/stats").json()["requests"]
    assert tokens_seen["POST /app/installations/{id}/access_tokens"] >= 1
    body_lines = [line for line in private.splitlines() if not line.startswith("-----")]
    stored = (tmp_path / "s.db").read_bytes() + out.read_bytes()
    for text in (result.stdout + result.stderr, stored.decode("latin-1")):
        assert "ghs_" not in text and not any(line in text for line in body_lines)


@pytest.mark.parametrize(("extra", "expected"), [
    (("--org", "acme", "--installation-id", "4242"), "no installation 4242"),
    (("--org", "nowhere"), "not installed on org 'nowhere'"),
])
def test_cli_unknown_installation_is_one_line_exit_2(app_simulator, keys, tmp_path, extra, expected):
    private, _ = keys
    result = cli_scan(app_simulator, tmp_path, private, *extra)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("batchdeck: error")]
    assert len(errors) == 1 and expected in errors[0] and "Traceback" not in result.stderr


def test_cli_wrong_key_is_one_line_exit_2(app_simulator, other_keys, tmp_path):
    wrong, _ = other_keys
    result = cli_scan(app_simulator, tmp_path, wrong, "--org", "acme")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "batchdeck: error: GitHub App 77: the API refused the App's JWT (A JSON web token could not be decoded); "
        "check --app-id and that --private-key is this App's key"]
    assert not (tmp_path / "s.db").exists() or b"ioc-scan" not in (tmp_path / "s.db").read_bytes()


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_TOKEN", "GH_TOKEN")}
    return subprocess.run([sys.executable, "-m", "console.cli", *args, "--db", str(tmp_path / "s.db")],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_cli_replay_continues_as_the_app(app_simulator, keys, other_keys, tmp_path):
    import re

    private, _ = keys
    scanned = cli_scan(app_simulator, tmp_path, private, "--repo", "acme/not-there", "--installation-id", "9001")
    assert scanned.returncode == 1, scanned.stderr                      # the repository cannot be scanned
    run_id = re.search(r"run (\d+) created", scanned.stderr).group(1)
    wrong = tmp_path / "wrong.pem"
    wrong.write_text(other_keys[0])
    refused = cli(tmp_path, "replay", run_id, "--headless", "--app-id", "77", "--private-key", str(wrong),
                  "--installation-id", "9001")
    assert refused.returncode == 2
    assert [line for line in refused.stderr.splitlines() if line.startswith("batchdeck: error")] == [
        "batchdeck: error: GitHub App 77: the API refused the App's JWT (A JSON web token could not be decoded); "
        "check --app-id and that --private-key is this App's key"]
    before = httpx.get(f"{app_simulator}/_sim/stats").json()
    replayed = cli(tmp_path, "replay", run_id, "--headless", "--app-id", "77", "--private-key",
                   str(tmp_path / "app.pem"), "--installation-id", "9001")
    after = httpx.get(f"{app_simulator}/_sim/stats").json()
    assert replayed.returncode == 1 and "Traceback" not in replayed.stderr
    issued = "POST /app/installations/{id}/access_tokens"
    assert after["requests"][issued] == before["requests"][issued] + 1
    assert after["statuses"].get("401", 0) == before["statuses"].get("401", 0)
