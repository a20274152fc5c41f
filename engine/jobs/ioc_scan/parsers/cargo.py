"""``Cargo.lock`` (versions 1 to 4): every ``[[package]]`` with a ``source``.

Packages without ``source`` are the workspace's own crates (or path
dependencies) and are not reported. Lines come from the ``[[package]]``
headers (see ``_tomllines``).
"""

from __future__ import annotations

from typing import Any

from ..models import Dependency, LockfileError
from . import _tomllines


def parse(path: str, text: str) -> list[Dependency]:
    text = text.lstrip("\ufeff")
    doc = _tomllines.loads(path, text)
    packages = doc.get("package", [])
    if not isinstance(packages, list):
        raise LockfileError(path, "'package' is not an array of tables")
    out: list[Dependency] = []
    for package, line in zip(packages, _tomllines.package_lines(text, packages), strict=True):
        dependency = package_entry(path, package, line)
        if dependency is not None:
            out.append(dependency)
    return out


def package_entry(path: str, package: Any, line: int) -> Dependency | None:
    """What one ``[[package]]`` reports (None: a workspace crate or path dependency)."""
    if not isinstance(package, dict) or not isinstance(package.get("name"), str):
        raise LockfileError(path, "[[package]] without a name", line=line)
    version = package.get("version")
    if not isinstance(version, str) or not version:
        raise LockfileError(path, f"package {package['name']!r} has no version", line=line)
    if not package.get("source"):
        return None
    return Dependency(package["name"], version, line, "cargo", "locked")
