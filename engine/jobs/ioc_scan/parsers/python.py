"""Python: ``requirements*.txt``, ``poetry.lock``, ``Pipfile.lock``, ``uv.lock``, ``pyproject.toml``.

requirements files follow pip's own preprocessing: a backslash continues a
logical line unless the line carries a comment, comments start at ``#`` at the
start or after whitespace, and per-requirement options (``--hash=...``) begin
at the first token starting with ``-``. The logical line's first physical line
is reported. ``==X``/``===X`` pins are ``locked``; anything else
(``>=1,<2``, ``~=1.4``, ``==1.*``, a bare name) is ``declared`` with the
specifier set as the version. ``-r``/``-c`` includes are returned as notes and
not followed (discovery finds and scans those files on their own); editable
installs, URLs, local paths and global options are skipped. Markers and extras
do not change what is reported: a scanner cannot know the target platform.

Locks (poetry, uv) are TOML read with ``tomllib``; lines come from the
``[[package]]`` headers (see ``_tomllines``). Pipfile.lock is JSON: every
section but ``_meta`` (``default``, ``develop`` and newer custom categories),
``"version": "==X"`` stripped to ``X``. Local packages (uv ``editable``,
``virtual``, ``directory``, ``path`` sources; poetry ``directory``/``file``
sources; Pipfile entries without a version) are not reported.

``pyproject.toml`` is declared: PEP 621 ``[project] dependencies`` and
``optional-dependencies``, PEP 735 ``[dependency-groups]``, and poetry's
``[tool.poetry.dependencies]``, ``dev-dependencies`` and
``group.<name>.dependencies``. Poetry constraints (``^1.2``, ``~1.2``,
``1.2.*``, ``>=1 <2``, ``||``) are translated to PEP 440 specifier sets here, so
matching only ever sees PEP 440 (alternatives joined by `` || ``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from ..models import Dependency, DependencyList, LockfileError
from . import _jsonlines, _tomllines

_COMMENT = re.compile(r"(^|\s+)#.*$")
_INCLUDE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?<=-[rc]))(\S+)")
_SKIP_PREFIXES = ("-e", "--editable", "-", ".", "/", "~")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://|^git\+|\.(whl|zip|tar\.gz|tar\.bz2|tgz)$", re.I)


# ---------------------------------------------------------------- requirements


def parse_requirements(path: str, text: str) -> DependencyList:
    return parse_requirements_lines(path, text.lstrip("\ufeff").split("\n"))


def parse_requirements_lines(path: str, lines: Iterable[str]) -> DependencyList:
    """The parse over physical lines read one at a time (a large file streams through here)."""
    out = DependencyList()
    for line_number, logical in _logical_lines(lines):
        line = _COMMENT.sub("", logical).strip()
        if not line:
            continue
        include = _INCLUDE.match(line)
        if include:
            kind = "constraints" if include.group(1) in ("-c", "--constraint") else "requirements"
            out.notes.append(f"line {line_number}: includes {kind} file {include.group(2)} (not followed)")
            continue
        if line.startswith(_SKIP_PREFIXES) or _URL.search(line.split(";")[0].strip()):
            continue
        requirement_text = _before_options(line)
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement as exc:
            raise LockfileError(
                path, f"invalid requirement {requirement_text!r}: {exc}", line=line_number
            ) from None
        if requirement.url:
            continue
        out.append(_from_requirement(requirement, line_number, pins_are_locked=True))
    return out


def _logical_lines(lines: Iterable[str]):
    """(first physical line, joined text) as pip's ``join_lines`` builds them."""
    pending: list[str] = []
    first = 0
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r")
        if line.endswith("\\") and not _COMMENT.search(line):
            if not pending:
                first = number
            pending.append(line[:-1])
            continue
        if pending:
            pending.append(line)
            yield first, " ".join(pending)
            pending = []
        else:
            yield number, line
    if pending:
        yield first, " ".join(pending)


def _before_options(line: str) -> str:
    kept = []
    for token in line.split(" "):
        if token.startswith("-"):
            break
        kept.append(token)
    return " ".join(kept).strip()


def _from_requirement(requirement: Requirement, line: int, *, pins_are_locked: bool) -> Dependency:
    specifiers = list(requirement.specifier)
    if pins_are_locked and len(specifiers) == 1:
        only = specifiers[0]
        if only.operator in ("==", "===") and not only.version.endswith(".*"):
            return Dependency(requirement.name, only.version, line, "pypi", "locked")
    return Dependency(requirement.name, str(requirement.specifier), line, "pypi", "declared")


# ---------------------------------------------------------------- locks


POETRY_SKIP = {"directory", "file"}
UV_SKIP = {"editable", "virtual", "directory", "path"}


def parse_poetry_lock(path: str, text: str) -> list[Dependency]:
    return _toml_lock(path, text, skip_sources=POETRY_SKIP, source_kind=_poetry_source)


def parse_uv_lock(path: str, text: str) -> list[Dependency]:
    return _toml_lock(path, text, skip_sources=UV_SKIP, source_kind=_uv_source)


def _poetry_source(package: dict[str, Any]) -> str | None:
    source = package.get("source")
    return source.get("type") if isinstance(source, dict) else None


def _uv_source(package: dict[str, Any]) -> str | None:
    source = package.get("source")
    if isinstance(source, dict) and source:
        return next(iter(source))
    return None


def _toml_lock(path: str, text: str, *, skip_sources: set[str], source_kind) -> list[Dependency]:
    text = text.lstrip("\ufeff")
    doc = _tomllines.loads(path, text)
    packages = doc.get("package", [])
    if not isinstance(packages, list):
        raise LockfileError(path, "'package' is not an array of tables")
    lines = _tomllines.package_lines(text, packages)
    out: list[Dependency] = []
    for package, line in zip(packages, lines, strict=True):
        dependency = toml_lock_package(path, package, line, skip_sources=skip_sources, source_kind=source_kind)
        if dependency is not None:
            out.append(dependency)
    return out


def toml_lock_package(path: str, package: Any, line: int, *, skip_sources: set[str],
                      source_kind) -> Dependency | None:
    """What one ``[[package]]`` of a poetry or uv lock reports (None: a local package or no version)."""
    if not isinstance(package, dict) or not isinstance(package.get("name"), str):
        raise LockfileError(path, "[[package]] without a name", line=line)
    version = package.get("version")
    if not isinstance(version, str) or not version or source_kind(package) in skip_sources:
        return None
    return Dependency(package["name"], version, line, "pypi", "locked")


def poetry_package(path: str, package: Any, line: int) -> Dependency | None:
    return toml_lock_package(path, package, line, skip_sources=POETRY_SKIP, source_kind=_poetry_source)


def uv_package(path: str, package: Any, line: int) -> Dependency | None:
    return toml_lock_package(path, package, line, skip_sources=UV_SKIP, source_kind=_uv_source)


def parse_pipfile_lock(path: str, text: str) -> list[Dependency]:
    text = _jsonlines.strip_bom(text)
    doc = _jsonlines.loads(path, text)
    if not isinstance(doc, dict):
        raise LockfileError(path, "not a Pipfile.lock: the top level is not an object", line=1)
    lines = _jsonlines.member_lines(text, doc)
    out: list[Dependency] = []
    for section, entries in doc.items():
        if section == "_meta" or not isinstance(entries, dict):
            continue
        for name, entry in entries.items():
            line = lines.get((id(entries), name), 1)
            if not isinstance(entry, dict):
                raise LockfileError(path, f"{section}.{name} is not an object", line=line)
            version = entry.get("version")
            if not isinstance(version, str) or not version:
                continue  # git, path and editable entries carry no version
            out.append(Dependency(name, version.lstrip("="), line, "pypi", "locked"))
    return out


# ---------------------------------------------------------------- pyproject.toml


_TABLE_HEADER = re.compile(r"^[ \t]*\[\[?([^\[\]\n]+)\]\]?[ \t]*(?:#[^\n]*)?\r?$", re.M)


class _PyprojectLines:
    """Finds where a dependency is written, table by table, searching forward."""

    def __init__(self, text: str) -> None:
        self.text = text
        headers = [
            (m.group(1).strip().replace('"', "").replace("'", ""), m.start())
            for m in _TABLE_HEADER.finditer(text)
        ]
        self.spans: dict[str, tuple[int, int]] = {}
        for index, (name, start) in enumerate(headers):
            end = headers[index + 1][1] if index + 1 < len(headers) else len(text)
            self.spans.setdefault(re.sub(r"\s*\.\s*", ".", name), (start, end))
        self.cursors: dict[str, int] = {}

    def string(self, table: str, value: str) -> int:
        return self._find(table, [f'"{value}"', f"'{value}'", value])

    def key(self, table: str, name: str) -> int:
        start, end = self.spans.get(table, (0, len(self.text)))
        pattern = re.compile(rf"^[ \t]*[\"']?{re.escape(name)}[\"']?[ \t]*=", re.M)
        found = pattern.search(self.text, start, end)
        if found:
            return _tomllines.line_at(self.text, found.start())
        sub = self.spans.get(f"{table}.{name}")
        return _tomllines.line_at(self.text, sub[0]) if sub else self._table_line(table)

    def _find(self, table: str, needles: list[str]) -> int:
        start, end = self.spans.get(table, (0, len(self.text)))
        cursor = max(start, self.cursors.get(table, start))
        for needle in needles:
            at = self.text.find(needle, cursor, end)
            if at >= 0:
                self.cursors[table] = at + len(needle)
                return _tomllines.line_at(self.text, at)
        return self._table_line(table)

    def _table_line(self, table: str) -> int:
        span = self.spans.get(table)
        return _tomllines.line_at(self.text, span[0]) if span else 1


def parse_pyproject(path: str, text: str) -> list[Dependency]:
    text = text.lstrip("\ufeff")
    doc = _tomllines.loads(path, text)
    where = _PyprojectLines(text)
    out: list[Dependency] = []
    project = doc.get("project", {})
    if isinstance(project, dict):
        _pep508_list(path, project.get("dependencies"), "project", where, out)
        optional = project.get("optional-dependencies")
        if isinstance(optional, dict):
            for group in optional.values():
                _pep508_list(path, group, "project.optional-dependencies", where, out)
    groups = doc.get("dependency-groups")
    if isinstance(groups, dict):
        for group in groups.values():
            _pep508_list(path, group, "dependency-groups", where, out)
    poetry = doc.get("tool", {}).get("poetry", {}) if isinstance(doc.get("tool"), dict) else {}
    if isinstance(poetry, dict):
        tables = [
            ("tool.poetry.dependencies", poetry.get("dependencies")),
            ("tool.poetry.dev-dependencies", poetry.get("dev-dependencies")),
        ]
        for group_name, group in (poetry.get("group") or {}).items():
            if isinstance(group, dict):
                tables.append((f"tool.poetry.group.{group_name}.dependencies", group.get("dependencies")))
        for table, deps in tables:
            if isinstance(deps, dict):
                _poetry_table(path, table, deps, where, out)
    out.sort(key=lambda dep: dep.line)
    return out


def _pep508_list(path: str, items: Any, table: str, where: _PyprojectLines, out: list[Dependency]) -> None:
    if items is None:
        return
    if not isinstance(items, list):
        raise LockfileError(
            path, f"{table}: dependencies must be an array of strings", line=where._table_line(table)
        )
    for item in items:
        if not isinstance(item, str):
            continue  # PEP 735 {include-group = "..."}
        line = where.string(table, item)
        try:
            requirement = Requirement(item)
        except InvalidRequirement as exc:
            raise LockfileError(path, f"invalid requirement {item!r}: {exc}", line=line) from None
        if not requirement.url:
            out.append(_from_requirement(requirement, line, pins_are_locked=False))


def _poetry_table(
    path: str, table: str, deps: dict[str, Any], where: _PyprojectLines, out: list[Dependency]
) -> None:
    for name, spec in deps.items():
        if name.lower() == "python":
            continue
        constraints = spec if isinstance(spec, list) else [spec]
        line = where.key(table, name)
        for constraint in constraints:
            if isinstance(constraint, dict):
                constraint = constraint.get("version")
            if not isinstance(constraint, str):
                continue  # git, path and url dependencies
            out.append(Dependency(name, poetry_to_pep440(constraint), line, "pypi", "declared"))


# ---------------------------------------------------------------- poetry constraints


def poetry_to_pep440(constraint: str) -> str:
    """Translate a poetry constraint to PEP 440; alternatives (``||``) stay joined by `` || ``.

    A token that is not understood is kept as written (matching then finds it
    invalid and reports nothing rather than guessing).
    """
    return " || ".join(_poetry_conjunction(part) for part in constraint.split("||"))


def _poetry_conjunction(text: str) -> str:
    glued = re.sub(r"(\^|~=|~|==|!=|>=|<=|>|<|=)\s+", r"\1", text.strip())
    tokens = [token for token in re.split(r"[,\s]+", glued) if token]
    parts = [_poetry_token(token) for token in tokens]
    return ",".join(part for part in parts if part)


def _release(version: str) -> tuple[int, ...] | None:
    try:
        return Version(version).release
    except InvalidVersion:
        return None


def _poetry_token(token: str) -> str:
    if token in ("*", ""):
        return ""
    if token.startswith("^"):
        base = token[1:]
        release = _release(base)
        if release is None:
            return token
        first_nonzero = next((i for i, part in enumerate(release) if part != 0), len(release) - 1)
        upper = [*release[:first_nonzero], release[first_nonzero] + 1]
        return f">={base},<{'.'.join(map(str, upper))}"
    if token.startswith("~") and not token.startswith("~="):
        base = token[1:]
        release = _release(base)
        if release is None:
            return token
        upper = [release[0] + 1] if len(release) == 1 else [release[0], release[1] + 1]
        return f">={base},<{'.'.join(map(str, upper))}"
    if token[0] in "<>!~" or token.startswith("=="):
        return token
    if token.startswith("="):
        return "=" + token
    return f"=={token}"
