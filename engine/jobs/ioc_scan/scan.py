"""Starting an ioc-scan: the spec from CLI-shaped arguments, the client, the results.

Kept apart from the job so the CLI, the demo, tests and benchmarks build a
scan the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import InputError
from engine.jobs.ioc_scan.coverage import Coverage, coverage
from engine.jobs.ioc_scan.data import SHAI_HULUD_2
from engine.jobs.ioc_scan.job import ioc_spec
from engine.jobs.ioc_scan.models import IOCMatch
from engine.jobs.ioc_scan.queries import findings as finding_rows
from engine.jobs.ioc_scan.queries import parse_failures

DEFAULT_IOCS = SHAI_HULUD_2   # package data: found from a wheel install as from a checkout


@dataclass
class ScanTargets:
    orgs: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    repos: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.orgs or self.users or self.repos)


def read_repos_file(path: str | Path) -> list[str]:
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"{path}: cannot read repos file ({exc.strerror})") from None
    repos = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if text.count("/") != 1 or " " in text:
            raise InputError(f"{path}:{number}: expected owner/name, got {text!r}")
        repos.append(text)
    return repos


def build_spec(targets: ScanTargets, ioc_paths: list[str | Path], *, include_archived: bool = False,
               include_forks: bool = False, match: str = "*", api_url: str | None = None) -> dict[str, Any]:
    if targets.empty():
        raise InputError("nothing to scan: give --org, --user, --repo or --repos-file")
    for repo in targets.repos:
        if repo.count("/") != 1:
            raise InputError(f"--repo {repo!r}: expected owner/name")
    if not ioc_paths:
        raise InputError(f"no IOC list: give --iocs FILE (batchdeck ships the Shai-Hulud 2 list: --iocs {SHAI_HULUD_2})")
    return {
        "targets": {"orgs": targets.orgs, "users": targets.users, "repos": targets.repos},
        "iocs": ioc_spec(list(ioc_paths)),
        "include_archived": include_archived, "include_forks": include_forks, "match": match,
        "api_url": api_url,
    }


def make_client(engine: Any, api_url: str, token: str | None, *, transport: Any = None) -> Any:
    """A GitHub client for a scan: the run database holds its ETag cache."""
    from engine.github import GitHubClient
    from engine.httpcache import SqliteHttpCache

    return GitHubClient(api_url, token, config=engine.config, cache=SqliteHttpCache(engine.store),
                        transport=transport)


async def findings(store: Any, run_id: int) -> list[IOCMatch]:
    out: list[IOCMatch] = []
    after = 0
    while True:
        page = await finding_rows(store, run_id, after_id=after, limit=1000)
        if not page:
            return out
        for row in page:
            out.append(IOCMatch(row["repo"], row["file_path"], row["line_number"], row["package_name"],
                                row["version"], row["ecosystem"], row["ioc_source"], row["kind"]))
        after = page[-1]["id"]


@dataclass
class ScanResults:
    """Everything a run family has to say: findings (each with the run that found it),
    files that could not be parsed, and the coverage that decides the verdict."""

    matches: list[IOCMatch]
    found_by: dict[IOCMatch, int]
    failures: list[dict[str, Any]]
    coverage: Coverage

    @property
    def clean(self) -> bool:
        """Nothing found and everything in scope scanned: the only case for exit code 0."""
        return not self.matches and self.coverage.complete


async def results(store: Any, run_id: int) -> ScanResults:
    """The findings of ``run_id``'s family (the run and its replays, merged; the first run to find
    a finding is named), its parse failures and its coverage."""
    cov = await coverage(store, run_id)
    found_by: dict[IOCMatch, int] = {}
    failures: dict[tuple, dict[str, Any]] = {}
    for rid in cov.runs:
        for match in await findings(store, rid):
            found_by.setdefault(match, rid)
        for failure in await parse_failures(store, rid):
            failures.setdefault(tuple(failure.values()), failure)
    return ScanResults(list(found_by), found_by, list(failures.values()), cov)
