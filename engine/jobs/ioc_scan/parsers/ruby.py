"""``Gemfile.lock`` (and its newer name ``gems.locked``): the ``specs:`` of GEM and GIT sources.

A spec line is indented four spaces under ``specs:`` as ``name (version)``;
six-space lines below it are that gem's own requirements and are skipped.
Platform gems are written ``nokogiri (1.16.0-x86_64-linux)``: RubyGems spells
prereleases with dots (``1.0.0.beta1``), so a ``-`` in a locked version always
introduces the platform, which is dropped. PATH sources (the project's own
gems) are not reported. Every spec line is one entry, so a gem locked for two
platforms is reported on both lines.
"""

from __future__ import annotations

import re

from ..models import Dependency, LockfileError

_SPEC = re.compile(r"^    (\S+) \(([^)\s]+)\)\s*$")
_REPORTED_SOURCES = {"GEM", "GIT"}


def parse(path: str, text: str) -> list[Dependency]:
    out: list[Dependency] = []
    section: str | None = None
    in_specs = False
    for number, raw in enumerate(text.lstrip("\ufeff").split("\n"), 1):
        line = raw.rstrip("\r")
        stripped = line.strip()
        if not stripped:
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            section, in_specs = stripped, False
            continue
        if section is None:
            raise LockfileError(path, "indented line before any section", line=number)
        if indent == 2:
            in_specs = stripped == "specs:"
            continue
        if indent != 4 or not in_specs or section not in _REPORTED_SOURCES:
            continue  # a gem's own requirements (6 spaces), BUNDLED WITH, RUBY VERSION, ...
        spec = _SPEC.match(line)
        if spec is None:
            raise LockfileError(
                path, f"expected 'name (version)' in specs, got {stripped[:60]!r}", line=number
            )
        version = spec.group(2).split("-", 1)[0]
        out.append(Dependency(spec.group(1), version, number, "rubygems", "locked"))
    if section is None:
        raise LockfileError(path, "not a Gemfile.lock: no GEM/GIT/PATH section", line=1)
    return out
