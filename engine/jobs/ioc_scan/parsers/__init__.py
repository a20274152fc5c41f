"""Manifest and lockfile parsers: file text in, ``(package, version, line)`` out.

``parser_for(path)`` picks a parser by file name alone (at any depth: only the
last path component counts, matched case-sensitively as GitHub stores it), and
``parse(path, text)`` runs it. Every parser returns a
:class:`~engine.jobs.ioc_scan.models.DependencyList` (a ``list[Dependency]``
with ``notes``) and raises :class:`~engine.jobs.ioc_scan.models.LockfileError`
— one line naming the path and, when known, the line — on malformed input, so
the job can record the failure against (repo, path) and carry on.

Line-number convention (1-based; the simulator's lockfile generator uses the
same, and end-to-end tests compare findings to its truth exactly). The reported
line is where that package's entry *starts*:

================================  ==================================================
file                              reported line
================================  ==================================================
package-lock.json v2/v3,          the ``"node_modules/<path>": {`` key line
npm-shrinkwrap.json               (v1: the ``"<name>": {`` line inside ``dependencies``)
yarn.lock (classic and berry)     the entry header line (``"pkg@^1.0.0", pkg@~1.0.0:``)
pnpm-lock.yaml                    the package key line (``packages:``; v9 ``snapshots:``
                                  only for a package absent from ``packages:``)
bun.lock                          the line of the package's key in ``"packages"``
package.json                      the dependency's line
requirements*.txt                 the requirement line (first line of a continued one)
poetry.lock, uv.lock, Cargo.lock  the ``[[package]]`` line
Pipfile.lock                      the ``"<name>": {`` key line
pyproject.toml                    the line of the requirement string / poetry key
go.mod, go.sum                    the module line (go.sum: its first line)
Gemfile.lock                      the spec line (``    name (version)``)
composer.lock                     the package's ``"name":`` line
================================  ==================================================

Lines count line feeds (``\\n``), so a CRLF file numbers exactly like its LF
twin; a leading BOM is ignored.

How lines are found without slowing parsing down: JSON formats are parsed with
the C ``json`` module and keys are located by one regex pass anchored on
``": {`` whose hits are matched to the parsed entries (``_jsonlines``); TOML
locks by a regex over ``[[package]]`` headers (``_tomllines``); pnpm's YAML
from libyaml's event stream, which carries line marks (``pnpm``); the line
formats (yarn, requirements, go, Gemfile.lock) by one pass over
``text.split("\\n")``. All are linear in the file size with no per-line index:
a 20 MB package-lock.json parses in about 1.5 s (json.loads alone is 0.5 s),
a 10 MB bun.lock or yarn.lock in under a second.

Large files: ``Parser.parse_blob`` (a blob in memory) and ``Parser.parse_file``
(a blob downloaded to a file) with :class:`BlobLimits` (from ``batch.memory``)
read a blob above ``stream_threshold_bytes`` an entry at a time where the
format allows (package-lock, yarn, pnpm, requirements, poetry, uv, Cargo; see
``streaming``) and refuses one it would have to parse whole
beyond the ``max_usage_mb`` budget, with the same findings either way.

``kind``: lockfiles and ``requirements`` pins (``==``/``===``) and ``go.mod``
give exact ``locked`` versions; ``package.json``, ``pyproject.toml`` and
unpinned requirements give ``declared`` ranges. ``Parser.lockfile`` tells
discovery which files are lockfiles (scanned first when prioritising).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from ..models import Dependency, DependencyList, LockfileError
from . import bun, cargo, composer, go, npm, package_json, pnpm, python, ruby, yarn
from .streaming import BlobLimits, parse_large, parse_large_file


@dataclass(frozen=True, slots=True)
class Parser:
    """One file format: its name, ecosystem, whether it is a lockfile, and its parse function."""

    name: str
    ecosystem: str
    lockfile: bool
    parse_text: Callable[[str, str], list[Dependency]]

    def parse(self, path: str, text: str | bytes) -> DependencyList:
        if isinstance(text, bytes | bytearray):
            try:
                text = bytes(text).decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise LockfileError(path, f"not UTF-8 text (byte {exc.start})") from None
        if text.startswith("\ufeff"):
            text = text[1:]
        try:
            result = self.parse_text(path, text)
        except LockfileError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
            # Input shaped in a way no branch above anticipated is still bad input, not a crash.
            raise LockfileError(path, f"cannot read as {self.name}: {type(exc).__name__}: {exc}") from exc
        return result if isinstance(result, DependencyList) else DependencyList(result)

    def parse_blob(self, path: str, data: str | bytes, limits: BlobLimits | None = None) -> DependencyList:
        """:meth:`parse`, but a blob above ``limits.stream_threshold`` is read an entry at a time
        or refused when it cannot be and is too large to parse whole (see ``streaming``)."""
        if limits is not None and len(data) > limits.stream_threshold:
            streamed = parse_large(self, path, data, limits)
            if streamed is not None:
                return streamed
        return self.parse(path, data)

    def parse_file(self, path: str, file: IO[bytes], size: int, limits: BlobLimits) -> DependencyList:
        """:meth:`parse_blob` of a blob in a binary file (at 0, ``size`` bytes, such as a
        downloaded blob's spooled file): above the threshold the streaming readers take it
        from the file, never holding it whole; otherwise it is read and parsed whole."""
        if size > limits.stream_threshold:
            streamed = parse_large_file(self, path, file, size, limits)
            if streamed is not None:
                return streamed
            file.seek(0)
        return self.parse(path, file.read())


_BY_NAME: dict[str, Parser] = {
    "package-lock.json": Parser("package-lock", "npm", True, npm.parse),
    "npm-shrinkwrap.json": Parser("npm-shrinkwrap", "npm", True, npm.parse),
    "yarn.lock": Parser("yarn.lock", "npm", True, yarn.parse),
    "pnpm-lock.yaml": Parser("pnpm-lock", "npm", True, pnpm.parse),
    "bun.lock": Parser("bun.lock", "npm", True, bun.parse),
    "package.json": Parser("package.json", "npm", False, package_json.parse),
    "poetry.lock": Parser("poetry.lock", "pypi", True, python.parse_poetry_lock),
    "Pipfile.lock": Parser("Pipfile.lock", "pypi", True, python.parse_pipfile_lock),
    "uv.lock": Parser("uv.lock", "pypi", True, python.parse_uv_lock),
    "pyproject.toml": Parser("pyproject.toml", "pypi", False, python.parse_pyproject),
    "go.sum": Parser("go.sum", "go", True, go.parse_go_sum),
    "go.mod": Parser("go.mod", "go", False, go.parse_go_mod),
    "Cargo.lock": Parser("Cargo.lock", "cargo", True, cargo.parse),
    "Gemfile.lock": Parser("Gemfile.lock", "rubygems", True, ruby.parse),
    "gems.locked": Parser("gems.locked", "rubygems", True, ruby.parse),
    "composer.lock": Parser("composer.lock", "packagist", True, composer.parse),
}
_REQUIREMENTS = Parser("requirements", "pypi", False, python.parse_requirements)
_REQUIREMENTS_PATTERN = "requirements*.txt"

SUPPORTED_FILE_NAMES: tuple[str, ...] = (*_BY_NAME, _REQUIREMENTS_PATTERN)


def _basename(path: str) -> str:
    return path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def parser_for(path: str) -> Parser | None:
    """The parser for this file name (at any depth), or None if it is not a supported file."""
    name = _basename(path)
    found = _BY_NAME.get(name)
    if found is not None:
        return found
    if fnmatch.fnmatchcase(name, _REQUIREMENTS_PATTERN):
        return _REQUIREMENTS
    return None


def parse(path: str, text: str | bytes) -> DependencyList:
    """Parse a supported file; raise :class:`LockfileError` if unsupported or malformed."""
    parser = parser_for(path)
    if parser is None:
        raise LockfileError(path, "not a supported manifest or lockfile name")
    return parser.parse(path, text)


__all__ = ["SUPPORTED_FILE_NAMES", "BlobLimits", "Parser", "parse", "parser_for"]
