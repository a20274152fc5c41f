"""ioc-scan, declared for the engine, the CLI and the console (see :mod:`engine.kinds`).

Its processor is :class:`~engine.jobs.ioc_scan.job.IocScanJob`; its services are a GitHub
client (:func:`~engine.github.service.github_services`, with the run's repositories left as
the scope an unauthenticated run is judged by); its tables, CLI, results and report section
are in this package (``queries.py``, ``cli.py``, ``report.py``).
"""

from __future__ import annotations

import functools

from engine.github.service import ServiceRequest, github_services
from engine.jobs.ioc_scan.cli import register, scan_results
from engine.jobs.ioc_scan.job import REPO_HEADS_DDL, IocScanJob
from engine.jobs.ioc_scan.queries import findings, parse_failures, pending_repos
from engine.jobs.ioc_scan.report import report_sections
from engine.jobs.ioc_scan.scan import NAME
from engine.kinds import JobKind, Migration

#: ioc-scan's tables. Version 1 is what the core schema held before kinds had their own
#: (IF NOT EXISTS: a database made then keeps its rows and just records the version).
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS blobs (
    sha TEXT NOT NULL,
    parser TEXT NOT NULL,
    result TEXT,
    error TEXT,
    stored_at REAL NOT NULL,
    PRIMARY KEY (sha, parser)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS findings (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    repo TEXT NOT NULL,
    file_path TEXT NOT NULL,
    line_number INTEGER,
    package_name TEXT NOT NULL,
    version TEXT NOT NULL,
    ecosystem TEXT NOT NULL,
    ioc_source TEXT NOT NULL,
    kind TEXT NOT NULL,
    UNIQUE (run_id, repo, file_path, package_name, version, ioc_source, kind)
);
CREATE TABLE IF NOT EXISTS file_errors (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    repo TEXT NOT NULL,
    file_path TEXT NOT NULL,
    reason TEXT NOT NULL,
    line INTEGER
);
""" + REPO_HEADS_DDL + ";\n"


async def _scope(req: ServiceRequest) -> int | None:
    return await pending_repos(req.store, req.run.id)


KIND = JobKind(
    name=NAME,
    processor=IocScanJob,
    description="find compromised package versions in the lockfiles of every repository of an org",
    migrations=(Migration(1, SCHEMA_V1),),
    services=functools.partial(github_services, scope=_scope),
    cli=register,
    results=scan_results,
    report=report_sections,
    queries={"findings": findings, "parse_failures": parse_failures},
)
