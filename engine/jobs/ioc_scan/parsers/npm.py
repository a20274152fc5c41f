"""``package-lock.json`` and ``npm-shrinkwrap.json``, lockfileVersion 1, 2 and 3.

v2 and v3 describe the install tree in ``packages``, keyed by install path
(``node_modules/a/node_modules/b``); the package name is the part after the
last ``node_modules/`` unless the entry carries ``"name"`` — npm writes that
for aliases (``"node_modules/lodash-es-alias": {"name": "lodash-es", ...}``),
and the real name is what an IOC lists. v2 also keeps the v1 ``dependencies``
tree for old npm clients; it is ignored when ``packages`` exists so nothing is
reported twice. v1 only has ``dependencies``, nested by ``dependencies``
again, with aliases spelled in the version (``"version": "npm:real@1.2.3"``).

Not reported: the root entry (``""``), workspace folders and ``link: true``
entries — they are the project's own code, not something installed from a
registry — and entries without a version.
"""

from __future__ import annotations

from typing import Any

from ..models import Dependency, LockfileError
from . import _jsonlines

_NODE_MODULES = "node_modules/"


def parse(path: str, text: str) -> list[Dependency]:
    text = _jsonlines.strip_bom(text)
    doc = _jsonlines.loads(path, text)
    if not isinstance(doc, dict):
        raise LockfileError(path, "not an npm lockfile: the top level is not an object", line=1)
    packages = doc.get("packages")
    if packages is not None:
        if not isinstance(packages, dict):
            raise LockfileError(path, '"packages" is not an object')
        installed = [key for key in packages if _NODE_MODULES in key]
        return _from_packages(path, packages, _jsonlines.child_lines(text, doc, packages, installed))
    dependencies = doc.get("dependencies", {})
    if not isinstance(dependencies, dict):
        raise LockfileError(path, '"dependencies" is not an object')
    if "lockfileVersion" not in doc and "name" not in doc and not dependencies:
        raise LockfileError(path, "not an npm lockfile: no lockfileVersion, packages or dependencies", line=1)
    out: list[Dependency] = []
    _from_dependencies(path, dependencies, _jsonlines.member_lines(text, doc), out)
    return out


def _line(lines, parent: dict, key: str) -> int:
    return lines.get((id(parent), key), 1)


def _from_packages(path: str, packages: dict[str, Any], lines: dict[str, int]) -> list[Dependency]:
    out: list[Dependency] = []
    for install_path, entry in packages.items():
        dependency = package_entry(path, install_path, entry, lines.get(install_path, 1))
        if dependency is not None:
            out.append(dependency)
    return out


def package_entry(path: str, install_path: str, entry: Any, line: int) -> Dependency | None:
    """What one member of ``packages`` reports (None: the project's own code, or no version)."""
    cut = install_path.rfind(_NODE_MODULES)
    if cut < 0:
        return None  # the root ("") or a workspace folder
    if not isinstance(entry, dict):
        raise LockfileError(path, f"entry {install_path!r} is not an object", line=line)
    if entry.get("link"):
        return None
    version = entry.get("version")
    if not isinstance(version, str) or not version:
        return None
    name = entry.get("name") or install_path[cut + len(_NODE_MODULES) :]
    name, version = _unalias(name, version)
    return Dependency(name, version, line, "npm", "locked")


def _from_dependencies(path: str, dependencies: dict[str, Any], lines, out: list[Dependency]) -> None:
    # Iterative on purpose: v1 trees can nest deeper than Python's recursion limit.
    stack = [dependencies]
    while stack:
        deps = stack.pop()
        for name, entry in deps.items():
            if not isinstance(entry, dict):
                raise LockfileError(
                    path, f"dependency {name!r} is not an object", line=_line(lines, deps, name)
                )
            version = entry.get("version")
            if isinstance(version, str) and version:
                real, exact = _unalias(name, version)
                out.append(Dependency(real, exact, _line(lines, deps, name), "npm", "locked"))
            nested = entry.get("dependencies")
            if isinstance(nested, dict) and nested:
                stack.append(nested)
    out.sort(key=lambda dep: dep.line)


def _unalias(name: str, version: str) -> tuple[str, str]:
    """``npm:real@1.2.3`` (an alias as v1 and some v2 entries spell it) → (real, 1.2.3)."""
    if version.startswith("npm:"):
        spec = version[4:]
        at = spec.rfind("@")
        if at > 0:
            return spec[:at], spec[at + 1 :]
    return name, version
