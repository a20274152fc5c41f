"""The job-kind machinery on the kinds batchdeck ships: migrations of a database made before
kinds had their own tables, a kind's schema from a newer batchdeck, ioc-scan's report section."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.errors import InputError
from engine.jobs.ioc_scan.queries import findings
from engine.kinds import load_kind
from engine.store import Store

OLD_SCHEMA = Path(__file__).parent / "fixtures" / "schema_v3_before_kinds.sql"


def old_database(path: Path) -> None:
    """A database as batchdeck wrote it before this change: ioc-scan's tables in the core schema."""
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA.read_text())
        conn.execute("INSERT INTO runs (kind, state, spec, config, created_at) "
                     "VALUES ('ioc-scan', 'completed', '{}', '{}', 0)")
        conn.execute("INSERT INTO findings (run_id, repo, file_path, line_number, package_name, version, ecosystem, "
                     "ioc_source, kind) VALUES (1, 'acme/web', 'package-lock.json', 3, 'left-pad', '1.3.0', 'npm', "
                     "'iocs.csv', 'locked')")
    conn.close()


async def test_a_database_made_before_kinds_had_tables_opens_keeps_its_findings_and_records_the_version(tmp_path):
    db = tmp_path / "old.db"
    old_database(db)
    async with await Store.open(db) as store:
        assert [f["package_name"] for f in await findings(store, 1)] == ["left-pad"]
        row = await store.fetchone("SELECT value FROM meta WHERE key='kind.ioc-scan.schema'")
        assert row == (str(max(m.version for m in load_kind("ioc-scan").migrations)),)
        await store.write("INSERT INTO repo_heads (repo, head, files, stored_at) VALUES ('acme/web', 'abc', '[]', 0)")
    async with await Store.open(db) as store:                  # and opens again as it is
        assert len(await findings(store, 1)) == 1


async def test_a_new_database_has_no_unused_tables_and_has_each_kinds(tmp_path):
    async with await Store.open(tmp_path / "new.db") as store:
        tables = {r[0] for r in await store.fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "sync_map" not in tables
    assert {"findings", "blobs", "file_errors", "repo_heads"} <= tables      # ioc-scan's, from its migration


async def test_a_kinds_schema_from_a_newer_batchdeck_is_one_line_and_closed(tmp_path):
    db = tmp_path / "newer.db"
    async with await Store.open(db) as store:
        await store.write("UPDATE meta SET value='99' WHERE key='kind.ioc-scan.schema'")
    with pytest.raises(InputError) as caught:
        await Store.open(db)
    message = str(caught.value)
    assert "\n" not in message and "newer batchdeck" in message and "ioc-scan schema 99" in message


async def test_the_github_factory_refuses_to_go_anonymous_without_consent_and_binds_the_client(tmp_path):
    from engine.api import Engine
    from engine.github.service import Unauthenticated, github_services
    from engine.kinds import Connection
    from engine.runner import Runner

    async def forty(req):
        return 40

    async with await Engine.open(tmp_path / "g.db") as engine:
        anonymous = await engine.create_run("http-get", {"api_url": "http://127.0.0.1:9", "items": 1})
        signed = await engine.create_run("http-get", {"api_url": "http://127.0.0.1:9", "authenticated": True})

        def request(run_id, run, **connection):
            runner = Runner(engine.store, run, load_kind("http-get").processor(), engine.config)
            return runner, runner.service_request(Connection(**connection))

        run = await engine.store.require_run(anonymous)
        with pytest.raises(Unauthenticated) as caught:
            await github_services(request(anonymous, run)[1], scope=forty)
        assert "--yes" in str(caught.value) and "40 repositories" in caught.value.warning
        runner, req = request(anonymous, run, assume_yes=True)
        services = await github_services(req, scope=forty)
        client = services["github"]
        try:
            assert client.api_url == "http://127.0.0.1:9" and not client.authenticated
            assert client._breakers is runner.breakers            # bound to this run when built
        finally:
            await services.aclose()
        with pytest.raises(InputError, match="was started with credentials"):
            await github_services(request(signed, await engine.store.require_run(signed), assume_yes=True)[1])
        runner, req = request(signed, await engine.store.require_run(signed), token="t0k3n-from-the-caller")
        services = await github_services(req)
        try:
            assert services["github"].authenticated
        finally:
            await services.aclose()
