"""``yarn.lock``: classic (v1, its own format) and berry (v2+, YAML-shaped, ``__metadata``).

Both are read with one line-oriented pass instead of a YAML parser: classic is
not YAML at all, berry files run to many megabytes where PyYAML is slow, and a
line pass gives each entry's header line for free. An entry is a header at
column 0 ending in ``:`` (one or more descriptors, ``"a@^1", a@~1.2:``; berry
writes ``? "very long key"`` followed by a ``:`` line when a key exceeds 1024
characters) followed by indented fields; only ``version`` and, for berry,
``resolution`` are read.

Names:

- classic aliases are ``alias@npm:real@^1`` in the header: the real name is
  reported;
- berry's ``resolution: "real@npm:1.2.3"`` is authoritative for the name (it
  already resolves aliases) and only ``npm:`` resolutions are reported —
  ``workspace:``, ``link:``, ``portal:``, ``file:``, ``patch:`` entries are the
  project's own code or a local rewrite of a package whose ``npm:`` entry is
  listed separately anyway.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..models import Dependency, LockfileError


def parse(path: str, text: str) -> list[Dependency]:
    return parse_lines(path, text.lstrip("\ufeff").split("\n"))


def parse_lines(path: str, lines: Iterable[str]) -> list[Dependency]:
    """The parse over physical lines (without their ``\\n``), read one at a time: a large
    file streams through here without a second copy of its text (see ``streaming``)."""
    entries = _entries(path, lines)
    berry = any(header == "__metadata" for header, _, _ in entries)
    out: list[Dependency] = []
    for header, line, fields in entries:
        if header == "__metadata":
            continue
        dep = _berry(path, header, line, fields) if berry else _classic(path, header, line, fields)
        if dep is not None:
            out.append(dep)
    return out


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _entries(path: str, lines: Iterable[str]) -> list[tuple[str, int, dict[str, str]]]:
    """(header without the colon, header line, first-level fields) for every entry."""
    entries: list[tuple[str, int, dict[str, str]]] = []
    fields: dict[str, str] | None = None
    field_indent: int | None = None
    awaiting_colon = False
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not line[0].isspace():
            if awaiting_colon and stripped.startswith(":"):
                awaiting_colon = False
                continue
            if line.startswith("? "):
                header, awaiting_colon = line[2:].strip(), True
            elif line.endswith(":"):
                header = line[:-1].strip()
            else:
                raise LockfileError(
                    path, f"expected an entry header ending in ':', got {stripped[:60]!r}", line=number
                )
            fields, field_indent = {}, None
            entries.append((header, number, fields))
            continue
        if fields is None:
            raise LockfileError(path, "indented line before any entry", line=number)
        indent = len(line) - len(line.lstrip())
        if field_indent is None:
            field_indent = indent
        if indent != field_indent:
            continue  # nested (dependencies of the entry)
        key, value = _field(stripped)
        if key is not None:
            fields.setdefault(key, value)
    return entries


def _field(stripped: str) -> tuple[str | None, str]:
    # berry: `version: 1.2.3`, `resolution: "a@npm:1.2.3"`; classic: `version "1.2.3"`.
    if stripped.endswith(":"):
        return None, ""  # a nested block such as `dependencies:`
    colon = stripped.find(": ")
    space = stripped.find(" ")
    if colon > 0 and (space < 0 or colon < space):
        return _unquote(stripped[:colon]), _unquote(stripped[colon + 2 :])
    if space > 0:
        return _unquote(stripped[:space]), _unquote(stripped[space + 1 :])
    return None, ""


def _descriptors(header: str) -> list[str]:
    return [_unquote(part) for part in header.split(",") if part.strip()]


def _split_descriptor(descriptor: str) -> tuple[str, str]:
    """``@scope/name@range`` → (``@scope/name``, ``range``)."""
    at = descriptor.find("@", 1)
    if at < 0:
        return descriptor, ""
    return descriptor[:at], descriptor[at + 1 :]


def _classic(path: str, header: str, line: int, fields: dict[str, str]) -> Dependency | None:
    descriptors = _descriptors(header)
    if not descriptors:
        raise LockfileError(path, "entry header names no package", line=line)
    version = fields.get("version")
    if not version:
        raise LockfileError(path, f"entry {descriptors[0]!r} has no version", line=line)
    name = _split_descriptor(descriptors[0])[0]
    for descriptor in descriptors:
        alias, spec = _split_descriptor(descriptor)
        if spec.startswith("npm:"):
            real = spec[4:]
            name = _split_descriptor(real)[0] if "@" in real[1:] else real
            break
    return Dependency(name, version, line, "npm", "locked")


def _berry(path: str, header: str, line: int, fields: dict[str, str]) -> Dependency | None:
    resolution = fields.get("resolution")
    version = fields.get("version")
    if resolution:
        name, reference = _split_descriptor(resolution)
        if not reference.startswith("npm:"):
            return None
        # "npm:1.2.3", or "npm:1.2.3::__archiveUrl=..." for a non-default tarball URL;
        # the version field, when present, is the same version without decoration.
        exact = reference[4:].split("::", 1)[0]
        return Dependency(name, version or exact, line, "npm", "locked")
    descriptors = _descriptors(header)
    if not descriptors:
        raise LockfileError(path, "entry header names no package", line=line)
    if not version:
        raise LockfileError(path, f"entry {descriptors[0]!r} has no version", line=line)
    name, spec = _split_descriptor(descriptors[0])
    if not spec.startswith("npm:"):
        return None
    real = spec[4:]
    if "@" in real[1:]:
        name = _split_descriptor(real)[0]
    return Dependency(name, version, line, "npm", "locked")
