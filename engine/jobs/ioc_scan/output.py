"""Findings as a security team consumes them: table, JSON, CSV and SARIF 2.1.0.

``render(matches, fmt, parse_errors, run_info)`` returns the whole document as
text; findings are sorted (repo, file, line, package, version, source) so two
runs over the same org diff cleanly.

SARIF is shaped for GitHub code scanning (the subset GitHub documents in
"SARIF support for code scanning"):

- one run; ``tool.driver`` is ``batchdeck`` with ``informationUri`` and one
  *rule per compromised package* (``ioc/<ecosystem>/<name>``). A rule per
  package rather than one generic rule makes the alert title name the package
  ("Compromised npm package @ctrl/tinycolor") and lets a team filter and
  dismiss per package; code scanning allows 25,000 rules per run and only
  packages actually found become rules. Each rule has ``shortDescription``,
  ``fullDescription``, ``help`` (text and markdown), ``defaultConfiguration``
  and ``properties`` with ``tags`` (including ``security``, which is what makes
  GitHub read ``security-severity``), ``precision`` and ``security-severity``
  ``"9.8"`` (critical: an installed malicious package runs code on developer
  and CI machines);
- one result per finding, ``level: "error"``, the message naming package,
  version, kind and IOC source, ``locations[0]`` the repo-relative file with
  ``region.startLine``, and ``partialFingerprints`` with a key derived from
  (repo, file, ecosystem, package, version, kind, source, occurrence) but not
  the line, so an alert survives unrelated edits that shift the lockfile;
- files that could not be parsed become ``toolExecutionNotifications``.

Code scanning takes one upload per repository, and result locations are
relative to that repository. A multi-repo scan therefore puts the repository
in each result's message and ``properties.repository``; to upload, render one
SARIF document per repository with :func:`sarif_by_repo` (``--sarif-dir``).
GitHub keeps at most 25,000 results per run (showing 5,000): far beyond one
repository's lockfiles.

Verdicts come from :class:`~engine.jobs.ioc_scan.coverage.Coverage`: a clean
"No compromised packages found." only for a completed run that scanned
everything in scope; otherwise ``INCOMPLETE`` and what was not scanned, in every
format (JSON ``complete``/``coverage``, SARIF ``executionSuccessful: false`` with
a notification per gap, the table's verdict line; CSV stays a plain table and
the CLI writes its coverage beside it). Without a coverage no format claims a
clean verdict.

Text that came from repositories (names, paths, packages, versions, reasons)
passes through :func:`engine.safetext.visible` in the table and CSV (both end up
in terminals); JSON and SARIF keep the exact values (JSON escapes control
characters itself).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.safetext import visible

from .coverage import NOT_REACHED, Coverage, repositories
from .models import IOCMatch, LockfileError, ParseFailure

FORMATS = ("table", "json", "csv", "sarif")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/batchdeck/batchdeck"
SECURITY_SEVERITY = "9.8"
CSV_COLUMNS = (
    "repo",
    "file_path",
    "line_number",
    "package_name",
    "version",
    "ecosystem",
    "ioc_source",
    "kind",
)
RUN_COLUMN = "run_id"        # added (last) when the findings say which run found them
GAPS_SHOWN = 50              # the table lists this many gaps; JSON lists all of them


def render(
    matches: Iterable[IOCMatch],
    fmt: str,
    parse_errors: Iterable[Any] = (),
    run_info: Mapping[str, Any] | None = None,
    *,
    coverage: Coverage | None = None,
    found_by: Mapping[IOCMatch, int] | None = None,
) -> str:
    """Render findings (and files that failed to parse) as ``table``, ``json``, ``csv`` or ``sarif``.

    ``coverage`` carries the verdict (see the module docstring); ``found_by`` maps a
    finding to the run that found it (a run merged with its replays).
    """
    ordered = _sorted(matches)
    failures = [_failure(item) for item in parse_errors]
    if fmt == "table":
        return _table(ordered, failures, run_info, coverage, found_by)
    if fmt == "json":
        return _json(ordered, failures, run_info, coverage, found_by)
    if fmt == "csv":
        return _csv(ordered, found_by)
    if fmt == "sarif":
        document = sarif_document(ordered, failures, run_info, coverage=coverage, found_by=found_by)
        return json.dumps(document, indent=2, default=str) + "\n"
    raise ValueError(f"unknown output format {fmt!r} (one of {', '.join(FORMATS)})")


def verdict(matches: Sequence[IOCMatch], coverage: Coverage | None) -> str:
    """The verdict line; without a coverage nothing is claimed about what was not looked at."""
    if coverage is not None:
        return coverage.verdict(len(matches))
    if matches:
        return f"{len(matches)} finding(s); coverage unknown."
    return "No finding in these results; coverage unknown (not a verdict on the scanned repositories)."


def _sorted(matches: Iterable[IOCMatch]) -> list[IOCMatch]:
    return sorted(
        matches,
        key=lambda m: (m.repo, m.file_path, m.line_number, m.package_name, m.version, m.ioc_source, m.kind),
    )


def _failure(item: Any) -> dict[str, Any]:
    """A parse failure as a dict (repo, file_path, reason, line), from any shape the job keeps."""
    if isinstance(item, ParseFailure):
        return item.to_dict()
    if isinstance(item, LockfileError):
        return {"repo": "", "file_path": item.path, "reason": item.reason, "line": item.line}
    if isinstance(item, Mapping):
        return {
            "repo": str(item.get("repo", "")),
            "file_path": str(item.get("file_path", item.get("path", ""))),
            "reason": str(item.get("reason", item.get("error", ""))),
            "line": item.get("line"),
        }
    if isinstance(item, Sequence) and not isinstance(item, str) and len(item) >= 3:
        return {
            "repo": str(item[0]),
            "file_path": str(item[1]),
            "reason": str(item[2]),
            "line": item[3] if len(item) > 3 else None,
        }
    raise TypeError(f"not a parse failure: {item!r}")


def _summary(matches: list[IOCMatch], failures: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = Counter(m.kind for m in matches)
    return {
        "findings": len(matches),
        "locked": kinds.get("locked", 0),
        "declared": kinds.get("declared", 0),
        "repositories": len({m.repo for m in matches}),
        "files": len({(m.repo, m.file_path) for m in matches}),
        "packages": len({(m.ecosystem, m.package_name) for m in matches}),
        "parse_errors": len(failures),
    }


# ---------------------------------------------------------------- table


def _table(
    matches: list[IOCMatch],
    failures: list[dict[str, Any]],
    run_info: Mapping[str, Any] | None,
    coverage: Coverage | None,
    found_by: Mapping[IOCMatch, int] | None,
) -> str:
    buffer = io.StringIO()
    with_run = found_by is not None and coverage is not None and len(coverage.runs) > 1
    columns: tuple[str, ...] = ("Repository", "File", "Line", "Package", "Version", "Ecosystem", "Kind", "IOC source")
    columns += ("Run",) if with_run else ()
    rows = [
        tuple(
            visible(cell)
            for cell in (
                m.repo,
                m.file_path,
                str(m.line_number),
                m.package_name,
                m.version,
                m.ecosystem,
                m.kind,
                m.ioc_source,
                *((str(found_by.get(m, "")),) if with_run and found_by is not None else ()),
            )
        )
        for m in matches
    ]
    error_rows = [
        tuple(visible(c) for c in (f["repo"], f["file_path"], "" if f["line"] is None else str(f["line"]),
                                   f["reason"]))
        for f in failures
    ]
    gaps = not_scanned_rows(coverage) if coverage is not None else []
    gap_rows = [tuple(visible(cell) for cell in row) for row in gaps[:GAPS_SHOWN]]
    # Wide enough that nothing wraps: a findings table is copied into tickets and grepped.
    width = max(
        [
            80,
            _natural_width(columns, rows),
            _natural_width(("Repository", "File", "Line", "Reason"), error_rows),
            _natural_width(("Not scanned", "Reason", "Run"), gap_rows),
        ]
    )
    console = Console(
        file=buffer, width=width, color_system=None, force_terminal=False, highlight=False, emoji=False
    )
    if run_info:
        console.print(Text("  ".join(f"{key}: {visible(value)}" for key, value in run_info.items())), soft_wrap=True)
    summary = _summary(matches, failures)
    complete = coverage is not None and coverage.complete
    if rows:
        title = "Compromised packages found" if complete else "Compromised packages found so far (INCOMPLETE)"
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, justify="right" if column == "Line" else "left", no_wrap=True)
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        console.print(table)
        console.print(
            Text(
                f"{summary['findings']} finding(s): {summary['locked']} locked, {summary['declared']} declared, "
                f"in {summary['files']} file(s) of {summary['repositories']} repositories."
            ),
            soft_wrap=True,
        )
    console.print(Text(verdict(matches, coverage)), soft_wrap=True)
    if coverage is not None and coverage.excluded_note():
        console.print(Text(coverage.excluded_note()), soft_wrap=True)
    if gap_rows:
        not_scanned = Table(title="Not scanned", title_justify="left")
        for column in ("Not scanned", "Reason", "Run"):
            not_scanned.add_column(column, no_wrap=True)
        for row in gap_rows:
            not_scanned.add_row(*(Text(cell) for cell in row))
        console.print(not_scanned)
        hidden = len(gaps) - len(gap_rows)
        if hidden > 0 and coverage is not None:
            console.print(Text(f"... and {hidden} more (batchdeck findings {coverage.run_id} --format json)"), soft_wrap=True)
    if error_rows:
        errors = Table(title="Files that could not be parsed", title_justify="left")
        for column in ("Repository", "File", "Line", "Reason"):
            errors.add_column(column, no_wrap=True)
        for row in error_rows:
            errors.add_row(*(Text(cell) for cell in row))
        console.print(errors)
    return buffer.getvalue()


def not_scanned_rows(coverage: Coverage) -> list[tuple[str, str, str]]:
    """(what, why, run) for every gap; repositories a stopped run did not reach are one row
    (``resume`` reaches them), anything that failed is a row of its own."""
    gaps = coverage.repos_not_scanned
    rows = [(g["repo"], g["reason"], str(g["run_id"])) for g in gaps if not g["reason"].endswith(NOT_REACHED)]
    rows += [(t["target"], t["reason"], str(t["run_id"])) for t in coverage.to_dict()["targets_not_listed"]]
    unreached = [g for g in gaps if g["reason"].endswith(NOT_REACHED)]
    if unreached:
        runs = ", ".join(str(r) for r in sorted({g["run_id"] for g in unreached}))
        rows.append((repositories(len(unreached)), "not reached (the run stopped before them; resume it)", runs))
    return rows


def _natural_width(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> int:
    widths = [len(column) for column in columns]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    return sum(widths) + 3 * len(widths) + 1


# ---------------------------------------------------------------- json / csv


def _json(
    matches: list[IOCMatch],
    failures: list[dict[str, Any]],
    run_info: Mapping[str, Any] | None,
    coverage: Coverage | None,
    found_by: Mapping[IOCMatch, int] | None,
) -> str:
    document = {
        "run": dict(run_info or {}),
        "complete": coverage.complete if coverage is not None else None,
        "verdict": verdict(matches, coverage),
        "coverage": coverage.to_dict() if coverage is not None else None,
        "summary": _summary(matches, failures),
        "matches": [_with_run(m.to_dict(), m, found_by) for m in matches],
        "parse_errors": failures,
    }
    return json.dumps(document, indent=2, default=str) + "\n"


def _with_run(row: dict[str, Any], match: IOCMatch, found_by: Mapping[IOCMatch, int] | None) -> dict[str, Any]:
    if found_by is not None:
        row[RUN_COLUMN] = found_by.get(match)
    return row


def csv_columns(found_by: Mapping[IOCMatch, int] | None = None) -> tuple[str, ...]:
    return CSV_COLUMNS + ((RUN_COLUMN,) if found_by is not None else ())


def _csv(matches: list[IOCMatch], found_by: Mapping[IOCMatch, int] | None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = csv_columns(found_by)
    writer.writerow(columns)
    for m in matches:
        row = _with_run(m.to_dict(), m, found_by)
        # a CSV is read in terminals (cat, less) as often as in spreadsheets: no raw controls
        writer.writerow([visible(row[column]) if isinstance(row[column], str) else row[column]
                         for column in columns])
    return buffer.getvalue()


# ---------------------------------------------------------------- sarif


def _version() -> str:
    try:
        return metadata.version("batchdeck")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def rule_id(ecosystem: str, package: str) -> str:
    return f"ioc/{ecosystem}/{package}"


def _artifact_uri(path: str) -> str:
    clean = path.replace("\\", "/")
    while clean.startswith(("./", "/")):
        clean = clean[2:] if clean.startswith("./") else clean[1:]
    return quote(clean, safe="/@+:~!$&'()*,;=-._")


def _rule(ecosystem: str, package: str, matches: list[IOCMatch]) -> dict[str, Any]:
    versions = sorted({m.version for m in matches})
    sources = sorted({m.ioc_source for m in matches})
    listed = ", ".join(versions)
    full = (
        f"The {ecosystem} package {package} has versions listed as compromised (malicious releases) "
        f"by {', '.join(sources)}. Found here: {listed}."
    )
    help_text = (
        f"{package} ({ecosystem}) appears in an IOC list of compromised package versions.\n"
        "A 'locked' finding means the lockfile pins a compromised version: anyone who installed from it ran the "
        "malicious release. A 'declared' finding means the manifest's range admits a compromised version: a fresh "
        "install without a lockfile could pull it.\n"
        "Remediation: pin a known-good version and regenerate the lockfile; remove cached node_modules/virtualenvs; "
        "treat machines and CI runners that installed the compromised version as exposed and rotate the credentials "
        "they held (registry tokens, cloud keys, GitHub tokens)."
    )
    help_markdown = (
        f"**{package}** (`{ecosystem}`) appears in an IOC list of compromised package versions "
        f"({', '.join(f'`{s}`' for s in sources)}).\n\n"
        "- **locked**: the lockfile pins a compromised version; whoever installed from it ran the malicious release.\n"
        "- **declared**: the manifest's range admits a compromised version; a fresh install could pull it.\n\n"
        "**Remediation**: pin a known-good version and regenerate the lockfile, clear cached installs, and rotate the "
        "credentials held by machines and CI runners that installed the compromised version."
    )
    return {
        "id": rule_id(ecosystem, package),
        "name": "CompromisedPackage",
        "shortDescription": {"text": f"Compromised {ecosystem} package {package}"},
        "fullDescription": {"text": full},
        "help": {"text": help_text, "markdown": help_markdown},
        "defaultConfiguration": {"level": "error"},
        "properties": {
            "tags": ["security", "supply-chain", "malicious-package", ecosystem],
            "precision": "very-high",
            "problem.severity": "error",
            "security-severity": SECURITY_SEVERITY,
        },
    }


def _fingerprint(match: IOCMatch, occurrence: int) -> str:
    key = "\x1f".join(
        (
            match.repo,
            match.file_path,
            match.ecosystem,
            match.package_name,
            match.version,
            match.kind,
            match.ioc_source,
            str(occurrence),
        )
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def sarif_document(
    matches: Iterable[IOCMatch],
    parse_errors: Iterable[Any] = (),
    run_info: Mapping[str, Any] | None = None,
    *,
    coverage: Coverage | None = None,
    found_by: Mapping[IOCMatch, int] | None = None,
    gaps: Sequence[Mapping[str, Any]] | None = None,
    run_id: int | None = None,
) -> dict[str, Any]:
    """The SARIF 2.1.0 log as a dict (``render(..., "sarif")`` serialises it).

    ``gaps`` (``{"target", "reason"}``) are what this document does not cover; by
    default the coverage's. Any gap, or a coverage that is not complete, makes
    ``executionSuccessful`` false: code scanning then shows the analysis as failed
    rather than a clean one.
    """
    ordered = _sorted(matches)
    failures = [_failure(item) for item in parse_errors]
    by_rule: dict[tuple[str, str], list[IOCMatch]] = {}
    for m in ordered:
        by_rule.setdefault((m.ecosystem, m.package_name), []).append(m)
    rule_keys = sorted(by_rule)
    rule_index = {key: index for index, key in enumerate(rule_keys)}
    multi_repo = len({m.repo for m in ordered}) > 1
    occurrences: Counter[tuple] = Counter()
    results = []
    for m in ordered:
        identity = (m.repo, m.file_path, m.ecosystem, m.package_name, m.version, m.kind, m.ioc_source)
        occurrences[identity] += 1
        how = "pins" if m.kind == "locked" else "declares a range admitting"
        where = f"{m.repo}: " if multi_repo else ""
        text = (
            f"{where}{m.file_path} {how} compromised {m.ecosystem} package {m.package_name}@{m.version} "
            f"(line {m.line_number}; listed in {m.ioc_source})."
        )
        results.append(
            {
                "ruleId": rule_id(m.ecosystem, m.package_name),
                "ruleIndex": rule_index[(m.ecosystem, m.package_name)],
                "level": "error",
                "message": {"text": text},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": _artifact_uri(m.file_path), "uriBaseId": "%SRCROOT%"},
                            "region": {"startLine": max(1, m.line_number)},
                        }
                    }
                ],
                "partialFingerprints": {"batchdeckFinding/v1": _fingerprint(m, occurrences[identity])},
                "properties": {
                    "repository": m.repo,
                    **({"runId": found_by.get(m)} if found_by is not None else {}),
                    "ecosystem": m.ecosystem,
                    "package": m.package_name,
                    "version": m.version,
                    "kind": m.kind,
                    "iocSource": m.ioc_source,
                },
            }
        )
    notifications = [
        {
            "level": "error",
            "message": {
                "text": f"{f['repo'] + ': ' if f['repo'] else ''}{f['file_path']}: could not be parsed: {f['reason']}"
            },
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _artifact_uri(f["file_path"]), "uriBaseId": "%SRCROOT%"},
                        **({"region": {"startLine": int(f["line"])}} if f["line"] else {}),
                    }
                }
            ],
            "properties": {"repository": f["repo"]},
        }
        for f in failures
    ]
    if gaps is None and coverage is not None:
        gaps = [{"target": g["repo"], "reason": g["reason"]} for g in coverage.repos_not_scanned]
        gaps += [{"target": t["target"], "reason": t["reason"]} for t in coverage.to_dict()["targets_not_listed"]]
    successful = not gaps and (coverage is None or coverage.complete)
    if not successful:
        reasons = "; ".join(coverage.incomplete_reasons()) if coverage is not None else "see the notifications"
        notifications.insert(0, {"level": "error", "descriptor": {"id": "batchdeck/incomplete"},
                                 "message": {"text": f"INCOMPLETE scan: {reasons}"}})
    notifications += [
        {"level": "error", "descriptor": {"id": "batchdeck/not-scanned"},
         "message": {"text": f"not scanned: {gap['target']}: {gap['reason']}"}}
        for gap in gaps or ()
    ]
    if run_id is None:
        run_id = coverage.run_id if coverage is not None else (run_info or {}).get("run_id")
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "batchdeck",
                "informationUri": INFORMATION_URI,
                "version": _version(),
                "semanticVersion": _version(),
                "rules": [_rule(eco, pkg, by_rule[(eco, pkg)]) for eco, pkg in rule_keys],
            }
        },
        # "category/run-id": the category (before the last /) stays the same across scans so a new
        # upload replaces the previous analysis; the part after it names this run
        "automationDetails": {"id": f"batchdeck/ioc-scan/{run_id if run_id is not None else ''}"},
        "invocations": [{"executionSuccessful": successful, "toolExecutionNotifications": notifications}],
        "results": results,
        "properties": {
            "repositories": sorted({m.repo for m in ordered}),
            **({"run": dict(run_info)} if run_info else {}),
        },
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def sarif_by_repo(
    matches: Iterable[IOCMatch],
    parse_errors: Iterable[Any] = (),
    run_info: Mapping[str, Any] | None = None,
    *,
    coverage: Coverage | None = None,
    found_by: Mapping[IOCMatch, int] | None = None,
) -> dict[str, str]:
    """One SARIF document per repository, ready for that repository's code-scanning upload.

    With a coverage: a document for every repository that was scanned — an empty one
    too, since uploading it closes the alerts a fix resolved — and for repositories
    scanned only in part (``executionSuccessful: false``, the files missed as
    notifications). A repository not scanned at all gets no document: an empty
    upload would close its alerts although nothing was looked at.
    """
    grouped: dict[str, list[IOCMatch]] = {}
    for m in matches:
        grouped.setdefault(m.repo, []).append(m)
    failures_by_repo: dict[str, list[dict[str, Any]]] = {}
    for item in parse_errors:
        failure = _failure(item)
        failures_by_repo.setdefault(failure["repo"], []).append(failure)
    gaps_by_repo: dict[str, list[dict[str, Any]]] = {}
    unscanned: set[str] = set()
    repos = set(grouped) | set(failures_by_repo)
    if coverage is not None:
        repos |= coverage.repos_scanned
        for gap in coverage.gaps:
            if gap.kind == "file" and gap.repo:
                gaps_by_repo.setdefault(gap.repo, []).append(
                    {"target": gap.target.partition(":")[2], "reason": gap.reason})
            elif gap.kind == "repo":
                unscanned.add(gap.target)
        repos |= set(gaps_by_repo)
        repos -= unscanned - set(grouped)
    return {
        repo: json.dumps(
            sarif_document(grouped.get(repo, []), failures_by_repo.get(repo, []), run_info,
                           found_by=found_by, gaps=gaps_by_repo.get(repo, []),
                           run_id=coverage.run_id if coverage is not None else None),
            indent=2,
            default=str,
        )
        + "\n"
        for repo in sorted(repos)
    }


def sarif_file_name(repo: str) -> str:
    """``owner/name`` → ``owner/name.sarif``, each part made safe as a file name (no ``..``, no separators)."""
    parts = [re.sub(r"[^A-Za-z0-9._-]", "_", part).lstrip(".") or "_" for part in repo.split("/", 1)]
    return "/".join(parts) + ".sarif"


__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "csv_columns",
    "not_scanned_rows",
    "render",
    "rule_id",
    "sarif_by_repo",
    "sarif_document",
    "sarif_file_name",
    "verdict",
]
