"""ioc-scan, declared for the engine, the CLI and the console (see :mod:`engine.kinds`).

Its processor is :class:`~engine.jobs.ioc_scan.job.IocScanJob`; its services are a GitHub
client (:func:`~engine.github.service.github_services`, with the run's repositories left as
the scope an unauthenticated run is judged by); its tables, CLI, results and report section
are in this package (``queries.py``, ``cli.py``, ``report.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.jobs.ioc_scan.queries import findings, parse_failures, pending_repos
from engine.kinds import JobKind, Migration

if TYPE_CHECKING:
    from engine.kinds import CliContext, ReportSection, ResultsRequest, ServiceRequest, Services

NAME = "ioc-scan"

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
-- head commit of each repository's default branch at its last scan, and the scannable files of
-- that commit: a re-scan skips the tree request of a repository whose head has not moved
CREATE TABLE IF NOT EXISTS repo_heads (
    repo TEXT PRIMARY KEY,
    head TEXT NOT NULL,
    files TEXT NOT NULL,
    stored_at REAL NOT NULL
) WITHOUT ROWID;
"""


# The kind is loaded whenever a database opens or a config is read (its tables, its section):
# what it needs only to run, print or report is imported when used, so that loading it is cheap.
def _processor() -> Any:
    from engine.jobs.ioc_scan.job import IocScanJob

    return IocScanJob()


async def _services(req: ServiceRequest) -> Services:
    from engine.github.service import github_services

    async def scope(request: ServiceRequest) -> int | None:
        return await pending_repos(request.store, request.run.id)

    return await github_services(req, scope=scope)


def _cli(ctx: CliContext) -> None:
    from engine.jobs.ioc_scan.cli import register

    register(ctx)


async def _results(req: ResultsRequest) -> int:
    from engine.jobs.ioc_scan.cli import scan_results

    return await scan_results(req)


async def _report(store: Any, run_id: int) -> list[ReportSection]:
    from engine.jobs.ioc_scan.report import report_sections

    return await report_sections(store, run_id)


KIND = JobKind(
    name=NAME,
    processor=_processor,
    description="find compromised package versions in the lockfiles of every repository of an org",
    migrations=(Migration(1, SCHEMA_V1),),
    services=_services,
    cli=_cli,
    results=_results,
    report=_report,
    queries={"findings": findings, "parse_failures": parse_failures},
)
