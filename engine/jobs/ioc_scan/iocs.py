"""IOC sources: the lists of compromised package versions a scan looks for.

After an incident, responders publish lists in whatever shape is at hand, so
several are accepted, chosen by file extension:

- ``.csv`` — ``Package,Version`` as published (e.g. Wiz's Shai-Hulud 2.0 list),
  optionally with an ``Ecosystem`` column. The version cell may hold several
  exact versions, ``= 1.2.3 || = 1.2.4``; each alternative is its own version
  (the earlier scanner compared the whole cell as one string and so never
  matched 233 of the 795 Shai-Hulud 2.0 packages).
- ``.json`` / ``.yaml`` / ``.yml`` — a list of
  ``{"ecosystem", "name", "versions": [...]}`` objects, or a mapping
  ``{"npm": {"pkg": ["1.0.0"]}}``.
- ``.txt`` / ``.list`` / ``.lst`` / ``.ioc`` / ``.iocs`` — one package a line:
  ``name@version``, ``@scope/name@version``, ``pypi:requests==2.0.0``,
  ``go:github.com/x/y@v1.2.3``; a bare name (or version ``*``) means every
  version; ``#`` starts a comment.

Every version is only ever meant explicitly: ``*`` in a CSV cell or a JSON/YAML
``versions``, or a bare name in a text list (``IOC.versions is None``). An
empty version cell (``foo,``), a missing or null ``versions``, or ``foo@`` is
an error naming the line: the row is more likely a paste gone wrong than "flag
every release of this package". A list without a single IOC (a CSV holding only
its header) is an error too: a scan against nothing would report a clean result.
Versions must be exact: a range in an IOC list is an error, not a guess. The
default ecosystem is npm (the incidents these lists come from).

Names are compared the way each registry compares them (``normalize_name``):
npm lowercase (npm has refused uppercase in new names for years, older
packages are matched case-insensitively, scopes included); PyPI per PEP 503;
crates.io case- and ``-``/``_``-insensitively; Go module paths exactly.
Versions are compared after ``normalize_version`` (PEP 440 canonical form for
PyPI, a leading ``v`` for Go, none for npm and Packagist).

Every IOC keeps its source (the file name), and the index keeps one IOC per
(source, package): when two lists name the same package, a match is reported
once per list, each naming its source. Bad input raises ``InputError`` naming
the file and the line (or entry) at fault.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_version

from engine.errors import InputError

from .models import ECOSYSTEMS, IOC

_ECOSYSTEM_ALIASES = {
    "npm": "npm",
    "node": "npm",
    "javascript": "npm",
    "pypi": "pypi",
    "pip": "pypi",
    "python": "pypi",
    "go": "go",
    "golang": "go",
    "cargo": "cargo",
    "crates": "cargo",
    "crates.io": "cargo",
    "rust": "cargo",
    "rubygems": "rubygems",
    "gem": "rubygems",
    "gems": "rubygems",
    "ruby": "rubygems",
    "packagist": "packagist",
    "composer": "packagist",
    "php": "packagist",
}
_FORMATS = {
    ".csv": "csv",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".txt": "text",
    ".list": "text",
    ".lst": "text",
    ".ioc": "text",
    ".iocs": "text",
}
_NAME_COLUMNS = ("package", "name", "package_name", "package name", "packagename", "module")
_VERSION_COLUMNS = ("version", "versions", "affected versions", "affected_versions", "compromised versions")
_ECOSYSTEM_COLUMNS = ("ecosystem", "registry", "platform", "type")
_EXACT_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_~!-]*$")
_ALTERNATIVES = re.compile(r"\s*(?:\|\||,)\s*")
_PEP503 = re.compile(r"[-_.]+")


def normalize_ecosystem(text: str) -> str | None:
    """The canonical ecosystem for ``text`` (``PyPI``, ``golang``, ``crates.io``...), or None."""
    return _ECOSYSTEM_ALIASES.get(str(text).strip().lower())


def normalize_name(ecosystem: str, name: str) -> str:
    """The key a registry compares names by."""
    name = name.strip()
    if ecosystem == "pypi":
        return _PEP503.sub("-", name).lower()
    if ecosystem == "cargo":
        return name.lower().replace("_", "-")
    if ecosystem == "go":
        return name
    return name.lower()


def normalize_version(ecosystem: str, version: str) -> str:
    """The form versions are compared in (exact versions only)."""
    version = version.strip()
    if ecosystem == "pypi":
        try:
            return canonicalize_version(version)
        except Exception:  # an invalid PEP 440 version still compares as text
            return version.lower()
    if ecosystem == "go":
        return version if version.startswith("v") else f"v{version}"
    if ecosystem in ("npm", "packagist"):
        return version.lstrip("=v").strip()
    return version


@dataclass
class IOCIndex:
    """IOCs by (ecosystem, normalised name); one IOC per (package, source)."""

    _by_package: dict[tuple[str, str], dict[str, IOC]] = field(default_factory=dict)
    _normalized: dict[IOC, frozenset[str] | None] = field(default_factory=dict)

    @classmethod
    def from_iocs(cls, iocs: Iterable[IOC]) -> IOCIndex:
        index = cls()
        for ioc in iocs:
            index.add(ioc)
        return index

    def add(self, ioc: IOC) -> None:
        key = (ioc.ecosystem, normalize_name(ioc.ecosystem, ioc.name))
        by_source = self._by_package.setdefault(key, {})
        previous = by_source.get(ioc.source)
        if previous is not None:
            del self._normalized[previous]
            versions = (
                None
                if previous.versions is None or ioc.versions is None
                else previous.versions | ioc.versions
            )
            ioc = IOC(previous.ecosystem, previous.name, versions, previous.source)
        by_source[ioc.source] = ioc
        self._normalized[ioc] = (
            None
            if ioc.versions is None
            else frozenset(normalize_version(ioc.ecosystem, v) for v in ioc.versions)
        )

    def lookup(self, ecosystem: str, name: str) -> list[IOC]:
        """Every source's IOC for this package (empty when no list names it)."""
        found = self._by_package.get((ecosystem, normalize_name(ecosystem, name)))
        return list(found.values()) if found else []

    def normalized_versions(self, ioc: IOC) -> frozenset[str] | None:
        return self._normalized[ioc]

    def __iter__(self) -> Iterator[IOC]:
        for by_source in self._by_package.values():
            yield from by_source.values()

    def __len__(self) -> int:
        return len(self._normalized)

    def __bool__(self) -> bool:
        return bool(self._normalized)

    @property
    def sources(self) -> list[str]:
        return sorted({ioc.source for ioc in self})

    def count(self, *, ecosystem: str | None = None, source: str | None = None) -> int:
        return sum(
            1
            for ioc in self
            if (ecosystem is None or ioc.ecosystem == ecosystem) and (source is None or ioc.source == source)
        )


def load_iocs(paths: Iterable[Path | str]) -> IOCIndex:
    """Load every IOC file into one index; raise ``InputError`` on the first bad input."""
    files = [Path(p) for p in paths]
    names = [p.name for p in files]
    index = IOCIndex()
    for path in files:
        # A file is named by its file name; two lists sharing a name keep their paths apart.
        source = path.name if names.count(path.name) == 1 else str(path)
        for ioc in load_ioc_file(path, source=source):
            index.add(ioc)
    return index


def load_ioc_file(path: Path | str, *, source: str | None = None) -> list[IOC]:
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: unknown IOC list format {path.suffix or '(no extension)'!r} "
            f"(use .csv, .json, .yaml/.yml or .txt)"
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: IOC file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not an IOC file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read IOC file: {exc.strerror}") from None
    return parse_iocs(text, fmt, source=source or path.name, where=str(path))


def parse_iocs(text: str, fmt: str, *, source: str, where: str | None = None) -> list[IOC]:
    """Parse IOC list ``text`` in format ``csv``, ``json``, ``yaml`` or ``text``."""
    where = where or source
    iocs = _parse(text, fmt, source, where)
    if not iocs:
        raise InputError(f"{where}: no IOC in this list (a scan against it could not find anything)")
    return iocs


def _parse(text: str, fmt: str, source: str, where: str) -> list[IOC]:
    if fmt == "csv":
        return _parse_csv(text, source, where)
    if fmt == "json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}:{exc.lineno}: invalid JSON: {exc.msg}") from None
        return _parse_structured(data, source, where)
    if fmt == "yaml":
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise InputError(f"{where}{line}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
        return _parse_structured(data, source, where)
    if fmt == "text":
        return _parse_text(text, source, where)
    raise InputError(f"{where}: unknown IOC list format {fmt!r}")


def _ecosystem(value: Any, where: str) -> str:
    found = normalize_ecosystem(value) if isinstance(value, str) else None
    if found is None:
        raise InputError(f"{where}: unknown ecosystem {value!r} (one of {', '.join(ECOSYSTEMS)})")
    return found


def _versions(value: Any, where: str) -> frozenset[str] | None:
    """Exact versions from a cell, string or list; None (every version) only for an explicit ``*``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError(f"{where}: no version (write '*' to flag every version)")
    items = value if isinstance(value, list | tuple) else [value]
    if not items:
        raise InputError(f"{where}: empty version list (write '*' for every version)")
    versions: set[str] = set()
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str):
            raise InputError(f"{where}: version {item!r} must be written as a string (quote it)")
        for part in _ALTERNATIVES.split(item.strip()):
            part = part.strip()
            if part == "*":
                return None
            if not part:
                continue
            exact = part.lstrip("=").strip()
            if not _EXACT_VERSION.match(exact):
                raise InputError(
                    f"{where}: {part!r} is not an exact version (write '= 1.2.3', alternatives joined by '||')"
                )
            versions.add(exact)
    if not versions:
        raise InputError(f"{where}: no version in {value!r} (write '*' for every version)")
    return frozenset(versions)


def _parse_csv(text: str, source: str, where: str) -> list[IOC]:
    reader = csv.reader(io.StringIO(text))
    columns: dict[str, int] | None = None
    header_line = 0
    out: list[IOC] = []
    for row in reader:
        line = reader.line_num
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if columns is None:
            columns = _csv_columns(cells, f"{where}:{line}")
            header_line = line
            continue
        at = f"{where}:{line}"
        name = cells[columns["name"]] if columns["name"] < len(cells) else ""
        if not name:
            raise InputError(f"{at}: no package name")
        version_cell = cells[columns["version"]] if columns["version"] < len(cells) else ""
        ecosystem = "npm"
        if "ecosystem" in columns and columns["ecosystem"] < len(cells) and cells[columns["ecosystem"]]:
            ecosystem = _ecosystem(cells[columns["ecosystem"]], at)
        out.append(IOC(ecosystem, name, _versions(version_cell, at), source))
    if columns is None:
        raise InputError(f"{where}: empty IOC list (expected a header such as 'Package,Version')")
    if not out:
        raise InputError(f"{where}:{header_line}: a header and no IOC rows below it")
    return out


def _csv_columns(header: list[str], at: str) -> dict[str, int]:
    lowered = [cell.lower() for cell in header]
    columns: dict[str, int] = {}
    for role, names in (
        ("name", _NAME_COLUMNS),
        ("version", _VERSION_COLUMNS),
        ("ecosystem", _ECOSYSTEM_COLUMNS),
    ):
        for index, cell in enumerate(lowered):
            if cell in names:
                columns[role] = index
                break
    if "name" not in columns or "version" not in columns:
        raise InputError(
            f"{at}: expected a header with Package and Version columns, got {','.join(header)!r}"
        )
    return columns


def _parse_structured(data: Any, source: str, where: str) -> list[IOC]:
    if isinstance(data, dict) and isinstance(data.get("packages"), list):
        data = data["packages"]
    out: list[IOC] = []
    if isinstance(data, list):
        for number, entry in enumerate(data, 1):
            at = f"{where}: entry {number}"
            if not isinstance(entry, dict):
                raise InputError(f"{at}: expected an object with name and versions")
            name = entry.get("name", entry.get("package"))
            if not isinstance(name, str) or not name.strip():
                raise InputError(f"{at}: no package name")
            ecosystem = _ecosystem(entry.get("ecosystem", "npm"), at)
            raw = entry.get("versions", entry.get("version"))
            out.append(IOC(ecosystem, name.strip(), _versions(raw, f"{at} ({name})"), source))
        return out
    if isinstance(data, dict):
        for eco_key, packages in data.items():
            ecosystem = _ecosystem(eco_key, f"{where}: key {eco_key!r}")
            if not isinstance(packages, dict):
                raise InputError(f"{where}: {eco_key!r} must map package names to versions")
            for name, raw in packages.items():
                out.append(
                    IOC(ecosystem, str(name).strip(), _versions(raw, f"{where}: {eco_key}.{name}"), source)
                )
        return out
    raise InputError(f"{where}: expected a list of packages or a mapping of ecosystem to packages")


_PREFIX = re.compile(r"^([A-Za-z][A-Za-z.]*):(?!//)(.+)$")
_COMMENT = re.compile(r"(^|\s)#.*$")


def _parse_text(text: str, source: str, where: str) -> list[IOC]:
    out: list[IOC] = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = _COMMENT.sub("", raw.rstrip("\r")).strip()
        if not line:
            continue
        at = f"{where}:{number}"
        ecosystem = "npm"
        prefix = _PREFIX.match(line)
        if prefix and normalize_ecosystem(prefix.group(1)):
            ecosystem = _ecosystem(prefix.group(1), at)
            line = prefix.group(2).strip()
        name, version = _split_text_entry(ecosystem, line)
        if not name or any(ch.isspace() for ch in name):
            raise InputError(f"{at}: expected name@version (or pypi:name==version), got {raw.strip()!r}")
        # a bare name is this format's explicit "every version"; `name@` with nothing after it is not
        out.append(IOC(ecosystem, name, _versions("*" if version is None else version, at), source))
    return out


def _split_text_entry(ecosystem: str, line: str) -> tuple[str, str | None]:
    if ecosystem == "pypi":
        found = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:(===|==|@)\s*(.+))?$", line)
        if found is None:
            return "", None
        return found.group(1), found.group(3)
    at = line.rfind("@")
    if at <= 0:
        return line, None
    return line[:at].strip(), line[at + 1 :].strip()


__all__ = [
    "IOCIndex",
    "load_ioc_file",
    "load_iocs",
    "normalize_ecosystem",
    "normalize_name",
    "normalize_version",
    "parse_iocs",
]
