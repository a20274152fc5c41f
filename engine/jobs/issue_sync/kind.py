"""issue-sync, declared in one place for the job-kind contract: everything the engine, the CLI
and the console learn about this kind, they learn from :data:`KIND`.

* processor — :class:`~engine.jobs.issue_sync.job.IssueSyncJob` (item by item, on the write lane);
* config — the ``issue_sync:`` section (:mod:`engine.jobs.issue_sync.options`);
* migrations — its tables (:mod:`engine.jobs.issue_sync.schema`);
* services — the run's GitHub client, from the caller's connection;
* cli — ``batchdeck sync`` (:mod:`engine.jobs.issue_sync.cli`);
* results — what ``sync``/``resume``/``replay`` print, and their exit code;
* report — its section of the run report;
* queries — the items of a run with their state, the counts and the pace (the console view's data).

The console view is ``console/views/issue_sync.py``, registered separately so that
loading this kind never imports Textual.
"""

from __future__ import annotations

from engine.jobs.issue_sync.cli import NAME, register
from engine.jobs.issue_sync.job import IssueSyncJob
from engine.jobs.issue_sync.options import CONFIG
from engine.jobs.issue_sync.queries import QUERIES
from engine.jobs.issue_sync.results import print_results, report_sections
from engine.jobs.issue_sync.schema import MIGRATIONS
from engine.kinds import JobKind, ServiceRequest, Services


async def github_client(request: ServiceRequest) -> Services:
    """The run's GitHub client (engine/github/service.py: the connection's URL and token, else the run's
    spec and the config's; a GitHub App). No ETag cache: what a sync reads must be what GitHub holds now."""
    from engine.github.service import github_services  # the client only when a run starts

    return await github_services(request, cache=False)


KIND = JobKind(
    name=NAME,
    description="push a planning tree (PRDs, epics, tasks) into GitHub Issues, exactly once, within the write limits",
    processor=IssueSyncJob,
    config=CONFIG,
    migrations=MIGRATIONS,
    services=github_client,
    cli=register,
    results=print_results,
    report=report_sections,
    queries=QUERIES,
)
