"""Large blobs: parsed from their bytes one entry at a time, or bounded.

A file at or below ``batch.memory.stream_threshold_bytes`` is parsed whole (the
fastest way, see the package docstring). Above it, the whole-file parse would
hold the bytes, their decoded text and the parsed tree at once — a 50 MB
package-lock.json took a scan to ~735 MB — so the formats that make up large
files are read from the bytes, an entry at a time:

========================================  ================================================
package-lock.json, npm-shrinkwrap.json    ``ijson.kvitems`` over ``packages`` (v2/v3); the
                                          key lines by one regex pass over the bytes
yarn.lock, requirements*.txt              the same line parser, over lines read one by one
pnpm-lock.yaml                            libyaml's event stream reading a binary stream
poetry.lock, uv.lock, Cargo.lock          ``tomllib`` per ``[[package]]`` section
========================================  ================================================

Every other format (and an npm v1 lockfile, which has no ``packages``) is parsed
whole when that fits the memory budget (``max_memory_usage_mb`` divided by
:data:`WHOLE_PARSE_EXPANSION`, what a parsed tree costs per byte of file) and
refused above it: an isolated file error naming the size and the setting, never
a scan that swells past its limit. The findings are the same as the whole-file
parse's on the same file (tests/ioc_scan/test_streaming_parsers.py).

UTF-8 is checked up front in 1 MB slices (no decoded copy), so an invalid file
fails as it does whole ("not UTF-8 text (byte N)").
"""

from __future__ import annotations

import codecs
import io
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import ijson  # type: ignore[import-untyped]  # ijson ships no py.typed and no types-ijson exists

from ..models import Dependency, DependencyList, LockfileError
from . import _jsonlines, cargo, npm, pnpm, python, yarn

#: bytes of Python objects a whole-file parse costs per byte of file (json.loads of a
#: package-lock.json measures ~6-8x; bench/bigfile.py prints it)
WHOLE_PARSE_EXPANSION = 8
_BOM = b"\xef\xbb\xbf"
_SLICE = 1 << 20

_KEY_OBJECT = re.compile(rb'"[ \t\r\n]*:[ \t\r\n]*[\[{]')
_NODE_MODULES = b"node_modules/"
_TOML_PACKAGE = re.compile(rb"^[ \t]*\[\[[ \t]*package[ \t]*\]\][ \t]*(?:#[^\n]*)?\r?$", re.M)
_TOML_TOP_TABLE = re.compile(rb"^[ \t]*\[[ \t]*(?!package[ \t]*[\].])[A-Za-z_\"']", re.M)


@dataclass(frozen=True, slots=True)
class BlobLimits:
    """Above ``stream_threshold`` bytes a blob streams; a format that cannot stream is parsed
    whole only up to ``max_whole_bytes``."""

    stream_threshold: int
    max_whole_bytes: int

    @classmethod
    def from_config(cls, config: Any) -> BlobLimits:
        batch = config.batch
        return cls(int(batch.stream_large_files_threshold),
                   int(batch.max_memory_usage_mb) * (1 << 20) // WHOLE_PARSE_EXPANSION)


def check_utf8(path: str, data: bytes) -> None:
    """Raise the whole-file parse's error if ``data`` is not UTF-8, without decoding a copy."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(view), _SLICE):
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(view[start:start + _SLICE])
        except UnicodeDecodeError as exc:
            raise LockfileError(path, f"not UTF-8 text (byte {start - pending + exc.start})") from None
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise LockfileError(path, f"not UTF-8 text (byte {len(data) - len(decoder.getstate()[0])})") from None


def lines_of(data: bytes) -> Iterator[str]:
    """Physical lines without their ``\\n``, decoded one at a time (``data`` is valid UTF-8)."""
    for raw in io.BytesIO(data):
        yield raw.rstrip(b"\n").decode("utf-8")


# ---------------------------------------------------------------- npm


def _key_lines(data: bytes) -> dict[str, list[int]]:
    """Lines of every ``"...node_modules/...": {`` key, in document order per key (see _jsonlines)."""
    lines: dict[str, list[int]] = {}
    line, last = 1, 0
    count, rfind = data.count, data.rfind
    for found in _KEY_OBJECT.finditer(data):
        end = found.start()
        start = rfind(b'"', 0, end)
        if start < 0:
            continue
        line += count(b"\n", last, start)
        last = start
        raw = data[start + 1:end]
        if _NODE_MODULES in raw:
            text = raw.decode("utf-8")
            lines.setdefault(_jsonlines._unescape(text) if "\\" in text else text, []).append(line)
    return lines


def npm_packages(path: str, data: bytes) -> list[Dependency] | None:
    """A v2/v3 lockfile's ``packages``, an entry at a time; None when it has none (v1, or not
    an npm lockfile: the whole-file parse says which)."""
    key_lines = _key_lines(data)
    out: list[Dependency | None] = []
    at: dict[str, int] = {}
    seen = 0
    try:
        for install_path, entry in ijson.kvitems(io.BytesIO(data), "packages", use_float=True):
            seen += 1
            queue = key_lines.get(install_path)
            line = queue.pop(0) if queue else 1
            dependency = npm.package_entry(path, install_path, entry, line)
            if install_path in at:       # a duplicate key: json.loads keeps the last value in the first place
                out[at[install_path]] = dependency
            else:
                at[install_path] = len(out)
                out.append(dependency)
    except ijson.JSONError as exc:
        raise LockfileError(path, f"invalid JSON: {str(exc).splitlines()[0][:200]}") from None
    if not seen:
        return None
    return [dependency for dependency in out if dependency is not None]


# ---------------------------------------------------------------- TOML locks


def _toml_sections(path: str, data: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line of its header, parsed) for each ``[[package]]`` section and each other top-level
    table, parsed on its own: only one section's tree is alive at a time."""
    cuts = sorted({0, *(m.start() for m in _TOML_PACKAGE.finditer(data)),
                   *(m.start() for m in _TOML_TOP_TABLE.finditer(data))})
    line, last = 1, 0
    for start, end in zip(cuts, [*cuts[1:], len(data)], strict=True):
        line += data.count(b"\n", last, start)
        last = start
        chunk = data[start:end].decode("utf-8")
        try:
            parsed = tomllib.loads(chunk)
        except tomllib.TOMLDecodeError as exc:
            raise _Unsplittable(path, line, str(exc)) from None
        yield line, parsed


class _Unsplittable(Exception):
    """A section did not parse on its own (a cut inside a multi-line string, or a real fault):
    the whole-file parse decides."""


def _toml_lock(package_dependency: Callable[[str, Any, int], Dependency | None]) -> Callable[[str, bytes], list]:
    def parse(path: str, data: bytes) -> list[Dependency]:
        out: list[Dependency] = []
        for line, section in _toml_sections(path, data):
            packages = section.get("package")
            if packages is None:
                continue
            if not isinstance(packages, list):
                raise LockfileError(path, "'package' is not an array of tables")
            for package in packages:
                dependency = package_dependency(path, package, line)
                if dependency is not None:
                    out.append(dependency)
        return out
    return parse


# ---------------------------------------------------------------- the registry


def _npm(path: str, data: bytes) -> list[Dependency] | None:
    return npm_packages(path, data)


STREAMING: dict[str, Callable[[str, bytes], list[Dependency] | None]] = {
    "package-lock": _npm,
    "npm-shrinkwrap": _npm,
    "yarn.lock": lambda path, data: yarn.parse_lines(path, lines_of(data)),
    "requirements": lambda path, data: python.parse_requirements_lines(path, lines_of(data)),
    "pnpm-lock": lambda path, data: pnpm.parse_source(path, io.BytesIO(data)),
    "poetry.lock": _toml_lock(python.poetry_package),
    "uv.lock": _toml_lock(python.uv_package),
    "Cargo.lock": _toml_lock(cargo.package_entry),
}


def parse_large(parser: Any, path: str, data: str | bytes, limits: BlobLimits) -> DependencyList | None:
    """The streaming parse of a blob above the threshold, or None to parse it whole.

    Raises :class:`LockfileError` for a bad file, and for a file too large to parse whole.
    """
    stream = STREAMING.get(parser.name)
    size = len(data)
    if stream is not None:
        blob = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if blob.startswith(_BOM):
            blob = blob[len(_BOM):]
        check_utf8(path, blob)
        try:
            result = stream(path, blob)
        except _Unsplittable:
            result = None
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
            raise LockfileError(path, f"cannot read as {parser.name}: {type(exc).__name__}: {exc}") from exc
        if result is not None:
            return result if isinstance(result, DependencyList) else DependencyList(result)
    if size > limits.max_whole_bytes:
        how = "no streaming reader for this format" if stream is None else "it cannot be read in parts"
        raise LockfileError(path, f"too large to parse: {size:,} bytes ({how}; parsing it whole would exceed "
                                  f"batch.memory.max_usage_mb, which allows {limits.max_whole_bytes:,})")
    return None


__all__ = ["STREAMING", "WHOLE_PARSE_EXPANSION", "BlobLimits", "check_utf8", "lines_of", "parse_large"]
