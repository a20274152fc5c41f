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

The readers take a binary file, not bytes: a large blob is downloaded raw into a
spooled temporary file (``GitHubClient.download``) and read from there, so the
scan never holds it whole. A blob above ``max_usage_mb`` divided by
:data:`STREAM_PARSE_EXPANSION` is not read at all (:meth:`BlobLimits.refuse`):
one file error naming its size, and the verdict names the file as not checked.
"""

from __future__ import annotations

import codecs
import io
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import ijson  # type: ignore[import-untyped]  # ijson ships no py.typed and no types-ijson exists

from ..models import Dependency, DependencyList, LockfileError
from . import _jsonlines, cargo, npm, pnpm, python, yarn

#: bytes of Python objects a whole-file parse costs per byte of file (json.loads of a
#: package-lock.json measures ~6-8x; bench/bigfile.py prints it)
WHOLE_PARSE_EXPANSION = 8
#: the same for a streamed parse (the dependencies found and the key-line index it keeps,
#: ~2.5x; bench/bigfile.py prints it): above max_usage_mb / this a blob is not read at all
STREAM_PARSE_EXPANSION = 4
_BOM = b"\xef\xbb\xbf"
_SLICE = 1 << 20

_KEY_OBJECT = re.compile(rb'"[ \t\r\n]*:[ \t\r\n]*[\[{]')
_NODE_MODULES = b"node_modules/"
_TOML_PACKAGE = re.compile(rb"^[ \t]*\[\[[ \t]*package[ \t]*\]\][ \t]*(?:#[^\n]*)?\r?$", re.M)
_TOML_TOP_TABLE = re.compile(rb"^[ \t]*\[[ \t]*(?!package[ \t]*[\].])[A-Za-z_\"']", re.M)

#: reads a blob from a binary file positioned after its BOM; None: parse it whole instead
StreamParser = Callable[[str, IO[bytes]], "list[Dependency] | None"]


class TooLarge(LockfileError):
    """A file refused for its size under the memory settings: a fact about the settings, not
    about the blob, so it is not cached by sha (a scan with a larger budget reads it)."""


@dataclass(frozen=True, slots=True)
class BlobLimits:
    """Above ``stream_threshold`` bytes a blob streams; a format that cannot stream is parsed
    whole only up to ``max_whole_bytes``; no blob above ``max_blob_bytes`` is read at all."""

    stream_threshold: int
    max_whole_bytes: int
    max_blob_bytes: int | None = None

    @classmethod
    def from_config(cls, config: Any) -> BlobLimits:
        batch = config.batch
        budget = int(batch.max_memory_usage_mb) * (1 << 20)
        return cls(int(batch.stream_large_files_threshold), budget // WHOLE_PARSE_EXPANSION,
                   budget // STREAM_PARSE_EXPANSION)

    def refuse(self, path: str, size: int, *, at_least: bool = False) -> TooLarge | None:
        """The file error for a blob of ``size`` bytes above ``max_blob_bytes``, else None."""
        if self.max_blob_bytes is None or size <= self.max_blob_bytes:
            return None
        return TooLarge(path, f"too large to scan: {'more than ' if at_least else ''}{size:,} bytes "
                              f"(batch.memory.max_usage_mb allows files up to {self.max_blob_bytes:,} bytes; "
                              "not checked)")


def check_utf8(path: str, file: IO[bytes]) -> None:
    """Raise the whole-file parse's error if ``file`` (from where it is) is not UTF-8, reading
    1 MB slices: no decoded copy, and no more than a slice in memory. Puts the file back."""
    origin = file.tell()
    decoder = codecs.getincrementaldecoder("utf-8")()
    start = 0
    while chunk := file.read(_SLICE):
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise LockfileError(path, f"not UTF-8 text (byte {start - pending + exc.start})") from None
        start += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise LockfileError(path, f"not UTF-8 text (byte {start - len(decoder.getstate()[0])})") from None
    file.seek(origin)


def lines_of(file: IO[bytes]) -> Iterator[str]:
    """Physical lines without their ``\\n``, decoded one at a time (``file`` is valid UTF-8)."""
    for raw in file:
        yield raw.rstrip(b"\n").decode("utf-8")


# ---------------------------------------------------------------- npm


def _key_lines(file: IO[bytes], chunk_size: int = _SLICE) -> dict[str, list[int]]:
    """Lines of every ``"...node_modules/...": {`` key, in document order per key (see _jsonlines),
    from one pass over the file in chunks.

    A key is the text between the quote ending at a ``": {`` match and the quote before it.
    What is carried from one chunk to the next starts at the second-to-last quote of the
    chunk: a match still to come (or cut by the chunk's end) has its closing quote at or
    after the last quote, so its opening quote is at or after the one before.
    """
    lines: dict[str, list[int]] = {}
    line = 1
    buffer, base = b"", 0           # base: the file offset of buffer[0] (after the BOM, if any)
    last = 0                        # where ``line`` is counted to, in buffer coordinates
    done_to = -1                    # file offset of the last match handled (carried text repeats it)
    while True:
        chunk = file.read(chunk_size)
        buffer += chunk
        for found in _KEY_OBJECT.finditer(buffer):
            end = found.start()
            if base + end <= done_to:
                continue
            start = buffer.rfind(b'"', 0, end)
            if start < 0:
                continue
            done_to = base + end
            line += buffer.count(b"\n", last, start)
            last = start
            raw = buffer[start + 1:end]
            if _NODE_MODULES in raw:
                text = raw.decode("utf-8")
                lines.setdefault(_jsonlines._unescape(text) if "\\" in text else text, []).append(line)
        if not chunk:
            return lines
        final_quote = buffer.rfind(b'"')
        keep = max(buffer.rfind(b'"', 0, final_quote) if final_quote > 0 else 0, last, 0)
        line += buffer.count(b"\n", last, keep)
        buffer, base, last = buffer[keep:], base + keep, 0


def npm_packages(path: str, file: IO[bytes]) -> list[Dependency] | None:
    """A v2/v3 lockfile's ``packages``, an entry at a time; None when it has none (v1, or not
    an npm lockfile: the whole-file parse says which)."""
    origin = file.tell()
    key_lines = _key_lines(file)
    file.seek(origin)
    out: list[Dependency | None] = []
    at: dict[str, int] = {}
    seen = 0
    try:
        for install_path, entry in ijson.kvitems(file, "packages", use_float=True):
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


def _toml_sections(path: str, file: IO[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line of its header, parsed) for each ``[[package]]`` section and each other top-level
    table, parsed on its own from the lines read since the previous header: only one
    section's text and tree are alive at a time."""
    section: list[bytes] = []
    header_line = 1
    for number, raw in enumerate(file, 1):
        bare = raw.rstrip(b"\n")
        if section and (_TOML_PACKAGE.match(bare) or _TOML_TOP_TABLE.match(bare)):
            yield header_line, _toml_section(path, header_line, section)
            section, header_line = [], number
        section.append(raw)
    yield header_line, _toml_section(path, header_line, section)


def _toml_section(path: str, line: int, lines: list[bytes]) -> dict[str, Any]:
    try:
        return tomllib.loads(b"".join(lines).decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise _Unsplittable(path, line, str(exc)) from None


class _Unsplittable(Exception):
    """A section did not parse on its own (a cut inside a multi-line string, or a real fault):
    the whole-file parse decides."""


def _toml_lock(package_dependency: Callable[[str, Any, int], Dependency | None]) -> StreamParser:
    def parse(path: str, file: IO[bytes]) -> list[Dependency]:
        out: list[Dependency] = []
        for line, section in _toml_sections(path, file):
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


STREAMING: dict[str, StreamParser] = {
    "package-lock": npm_packages,
    "npm-shrinkwrap": npm_packages,
    "yarn.lock": lambda path, file: yarn.parse_lines(path, lines_of(file)),
    "requirements": lambda path, file: python.parse_requirements_lines(path, lines_of(file)),
    "pnpm-lock": pnpm.parse_source,
    "poetry.lock": _toml_lock(python.poetry_package),
    "uv.lock": _toml_lock(python.uv_package),
    "Cargo.lock": _toml_lock(cargo.package_entry),
}


def parse_large(parser: Any, path: str, data: str | bytes, limits: BlobLimits) -> DependencyList | None:
    """The streaming parse of a blob above the threshold held in memory, or None to parse it
    whole (see :func:`parse_large_file`)."""
    blob = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return parse_large_file(parser, path, io.BytesIO(blob), len(blob), limits)


def parse_large_file(parser: Any, path: str, file: IO[bytes], size: int,
                     limits: BlobLimits) -> DependencyList | None:
    """The streaming parse of a blob above the threshold, read from ``file`` (at 0, ``size``
    bytes: a downloaded blob's spooled file), or None to parse it whole.

    Raises :class:`LockfileError` for a bad file, and for a file too large to parse whole.
    """
    stream = STREAMING.get(parser.name)
    if stream is not None:
        if file.read(len(_BOM)) != _BOM:
            file.seek(0)
        check_utf8(path, file)
        try:
            result = stream(path, file)
        except _Unsplittable:
            result = None
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
            raise LockfileError(path, f"cannot read as {parser.name}: {type(exc).__name__}: {exc}") from exc
        if result is not None:
            return result if isinstance(result, DependencyList) else DependencyList(result)
    if size > limits.max_whole_bytes:
        how = "no streaming reader for this format" if stream is None else "it cannot be read in parts"
        raise TooLarge(path, f"too large to parse: {size:,} bytes ({how}; parsing it whole would exceed "
                                  f"batch.memory.max_usage_mb, which allows {limits.max_whole_bytes:,})")
    return None


__all__ = ["STREAMING", "STREAM_PARSE_EXPANSION", "WHOLE_PARSE_EXPANSION", "BlobLimits", "TooLarge", "check_utf8", "lines_of", "parse_large",
           "parse_large_file"]
