"""issue-sync, declared in one place: its name, its tables, its CLI, its report section.

The job-kind contract (architecture §7) is not built yet; until it is, this
module is what the contract will read. Everything issue-sync owns in SQLite is
created here by its own code (``engine/store.py`` has an older, unused
``sync_map`` table: left alone, not used).

Tables (all keyed by repository, so one database can sync several repos):

* ``issue_sync_map`` — stable id → issue number, issue id, content hash, URL:
  the sync map. One row per item, written in the same commit as the item's
  result, so a crash loses neither or both.
* ``issue_sync_intents`` — a create about to be sent, committed *before* the
  POST. A row without a map row is an issue that may exist: it is looked up
  by its hidden marker before anything is created again.
* ``issue_sync_links`` — a child linked under a parent (sub-issue or checklist).
* ``issue_sync_results`` — per run: what happened to each item (created,
  updated, unchanged, reconciled) and its number: the results view.
* ``issue_sync_progress`` — per run: pace, write budget and expected finish.
"""

from __future__ import annotations

from typing import Any

KIND = "issue-sync"

TABLES = (
    "CREATE TABLE IF NOT EXISTS issue_sync_map (repo TEXT NOT NULL, sid TEXT NOT NULL, number INTEGER NOT NULL, "
    "issue_id INTEGER NOT NULL, content_hash TEXT NOT NULL, url TEXT, path TEXT, updated_at REAL NOT NULL, "
    "PRIMARY KEY (repo, sid)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS issue_sync_intents (repo TEXT NOT NULL, sid TEXT NOT NULL, run_id INTEGER, "
    "sent_at REAL NOT NULL, PRIMARY KEY (repo, sid)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS issue_sync_links (repo TEXT NOT NULL, child TEXT NOT NULL, parent TEXT NOT NULL, "
    "mode TEXT NOT NULL, PRIMARY KEY (repo, child)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS issue_sync_results (run_id INTEGER NOT NULL, sid TEXT NOT NULL, "
    "action TEXT NOT NULL, number INTEGER, PRIMARY KEY (run_id, sid)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS issue_sync_progress (run_id INTEGER PRIMARY KEY, at REAL NOT NULL, "
    "data TEXT NOT NULL)",
)


async def ensure_tables(store: Any) -> None:
    """Create the kind's tables (idempotent; DDL, so outside the run's writer batches)."""
    for statement in TABLES:
        await store.write(statement)


def add_cli(subparsers: Any, common: Any, services: dict[str, Any]) -> None:
    """``batchdeck sync``; and how ``resume``/``replay`` rebuild the run's GitHub client."""
    from engine.jobs.issue_sync.cli import add_parser, resume_services

    add_parser(subparsers, common)
    services[KIND] = resume_services


async def report_section(store: Any, run_id: int) -> str:
    """The Markdown section this kind adds to a run's report."""
    from engine.jobs.issue_sync.cli import results_markdown

    return await results_markdown(store, run_id)


def _processor() -> Any:   # lazily: job.py imports this module
    from engine.jobs.issue_sync.job import IssueSyncJob
    return IssueSyncJob()


async def _github(req: Any) -> Any:   # imported when a run starts: loading the kind stays cheap
    from engine.github.service import github_services
    return await github_services(req, cache=False)


from engine.kinds import JobKind  # noqa: E402  (the contract; helper D replaces this)

KIND = JobKind(name=KIND, processor=_processor, services=_github)
