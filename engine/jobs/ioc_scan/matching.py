"""Dependencies × IOCs → findings.

- ``locked``: the pinned version, normalised per ecosystem, is one of the IOC's
  versions, or the IOC says ``*``. The finding's ``version`` is the pinned one.
- ``declared``: the declared range admits a compromised version — npm ranges
  with :mod:`.semver` (node-semver rules, prereleases only when the range opts
  in), PyPI specifier sets with ``packaging`` (alternatives joined by ``||``, as
  poetry constraints are translated, are each a ``SpecifierSet``), and any other
  ecosystem by exact equality. One finding per compromised version the range
  admits, whose ``version`` is that compromised version (so a security team
  sees *which* bad release a fresh install could pull); ``"*"`` when the IOC
  condemns every version. A range that is not a valid range (a dist-tag such
  as ``latest``, a URL) admits nothing: the scanner does not guess what a tag
  pointed to on the day.

When two IOC sources list the same package, each yields its own finding
naming its source. Identical findings (same repo, file, line, package,
version, source, kind) are reported once, in first-seen order.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from . import semver
from .iocs import IOCIndex, normalize_version
from .models import IOC, Dependency, IOCMatch


def match_dependencies(deps: Iterable[Dependency], index: IOCIndex, repo: str, path: str) -> list[IOCMatch]:
    """Findings for one file's dependencies (``path`` is the repo-relative file path)."""
    matches: dict[IOCMatch, None] = {}
    for dep in deps:
        for ioc in index.lookup(dep.ecosystem, dep.name):
            for version in _matching_versions(dep, ioc, index):
                found = IOCMatch(
                    repo=repo,
                    file_path=path,
                    line_number=dep.line,
                    package_name=dep.name,
                    version=version,
                    ecosystem=dep.ecosystem,
                    ioc_source=ioc.source,
                    kind=dep.kind,
                )
                matches.setdefault(found, None)
    return list(matches)


def _matching_versions(dep: Dependency, ioc: IOC, index: IOCIndex) -> list[str]:
    if dep.kind != "declared":
        bad = index.normalized_versions(ioc)
        if bad is None or normalize_version(dep.ecosystem, dep.version) in bad:
            return [dep.version]
        return []
    if ioc.versions is None:
        return ["*"]
    return [version for version in sorted(ioc.versions) if range_admits(dep.ecosystem, dep.version, version)]


def range_admits(ecosystem: str, declared: str, version: str) -> bool:
    """Would a dependency declared as ``declared`` accept the exact ``version``?"""
    if ecosystem == "npm":
        return semver.satisfies(version, declared)
    if ecosystem == "pypi":
        return _pep440_admits(declared, version)
    return normalize_version(ecosystem, declared) == normalize_version(ecosystem, version)


def _pep440_admits(declared: str, version: str) -> bool:
    try:
        parsed = Version(version)
    except InvalidVersion:
        return False
    # PEP 440: a prerelease is admitted only when the specifier itself names one. Passed
    # explicitly because packaging's default for contains() has changed between releases.
    return any(
        spec is not None and spec.contains(parsed, prereleases=bool(spec.prereleases))
        for spec in _specifier_sets(declared)
    )


@lru_cache(maxsize=4096)
def _specifier_sets(declared: str) -> tuple[SpecifierSet | None, ...]:
    out: list[SpecifierSet | None] = []
    for part in declared.split("||"):
        try:
            out.append(SpecifierSet(part.strip()))
        except InvalidSpecifier:
            out.append(None)
    return tuple(out)


__all__ = ["match_dependencies", "range_admits"]
