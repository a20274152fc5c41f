"""``pnpm-lock.yaml``: lockfile v5.x, v6.x and v9.x.

The file is YAML, read from libyaml's *event stream* (``yaml.parse``), not
``yaml.load``/``compose``: building the node tree resolves a tag for every
scalar in Python and costs about a second per megabyte, while the events
arrive at C speed with their line marks, and only three places in the tree
matter here (``lockfileVersion``, the keys of ``packages:``/``snapshots:``, and
their ``name``/``version`` fields). The YAML is still fully checked by libyaml:
a malformed file raises with the line of the fault.

Key shapes (the version decides which one is parsed):

- v5: ``/name/1.2.3`` and ``/@scope/name/1.2.3``, peers after ``_``
  (``/react-dom/17.0.2_react@17.0.2``);
- v6: ``/name@1.2.3``, peers in parentheses (``/react-dom@17.0.2(react@17.0.2)``);
- v9: ``name@1.2.3`` in ``packages:`` (no peers) and the same plus peer
  suffixes in ``snapshots:``.

An entry with ``name``/``version`` fields (tarball, git and aliased-registry
installs) uses them over the key. For v9 a package is reported once, on its
``packages:`` line; a ``snapshots:`` entry only adds something when its
``name@version`` has no ``packages:`` entry. A v6 package locked with two peer
sets is two entries (two install directories) and reported on both lines.
``file:`` and ``link:`` entries (the project's own folders) are not reported.
Multi-document files (pnpm 10's env lockfile before the main one) are read
document by document.
"""

from __future__ import annotations

import re
from typing import IO

import yaml

from ..models import Dependency, LockfileError

_Loader: type[yaml.CSafeLoader | yaml.SafeLoader]
try:
    _Loader = yaml.CSafeLoader
except AttributeError:  # libyaml missing: the pure-Python loader gives the same marks
    _Loader = yaml.SafeLoader

_VERSION_START = re.compile(r"^\d")


_SECTIONS = ("packages", "snapshots")
#: pnpm nests four levels; far deeper is an attack on whoever walks the tree
MAX_DEPTH = 1000
_FIELDS = ("name", "version")


class _Document:
    def __init__(self) -> None:
        self.top_kind: str | None = None
        self.top_line = 1
        self.version: str | None = None
        self.has_sections = False
        # (section, key) -> [line, fields]
        self.entries: dict[tuple[str, str], list] = {}


class _Frame:
    __slots__ = ("expect_key", "key", "kind", "path")

    def __init__(self, kind: str, path: tuple) -> None:
        self.kind = kind
        self.path = path
        self.expect_key = True
        self.key: str | None = None


def _line(event: yaml.Event) -> int:
    """The 1-based line ``event`` starts on."""
    mark = event.start_mark
    assert mark is not None, "the parser marks every event it emits"  # the stubs allow an unmarked one
    return mark.line + 1


def _read(path: str, source: str | IO[bytes]) -> list[_Document]:
    documents: list[_Document] = []
    document = _Document()
    stack: list[_Frame] = []
    for event in yaml.parse(source, Loader=_Loader):
        kind = type(event)
        if kind is yaml.AliasEvent or getattr(event, "anchor", None) is not None:
            # pnpm writes no anchors or aliases; refusing them is what keeps an alias bomb
            # ("billion laughs") from ever being expanded by anything that reads this file
            raise LockfileError(path, "YAML anchors and aliases are not used by pnpm lockfiles "
                                      "(refused, not expanded)", line=_line(event))
        if kind is yaml.DocumentStartEvent:
            document, stack = _Document(), []
            documents.append(document)
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            container = "map" if kind is yaml.MappingStartEvent else "seq"
            line = _line(event)
            if not stack:
                document.top_kind, document.top_line = container, line
                stack.append(_Frame(container, ()))
                continue
            parent = stack[-1]
            if parent.kind == "map" and parent.expect_key:
                raise LockfileError(path, "unexpected complex mapping key", line=line)
            if len(stack) >= MAX_DEPTH:
                raise LockfileError(path, f"invalid YAML: nested more than {MAX_DEPTH} levels deep", line=line)
            # only the first three levels matter (sections, their entries, their fields)
            where = parent.path + (parent.key if parent.kind == "map" else None,) if len(parent.path) < 3 \
                else parent.path
            if len(where) == 1 and where[0] in _SECTIONS and container != "map":
                raise LockfileError(path, f"{where[0]!r} is not a mapping", line=line)
            stack.append(_Frame(container, where))
        elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            stack.pop()
            if stack and stack[-1].kind == "map":
                stack[-1].expect_key = True
        elif isinstance(event, yaml.ScalarEvent):  # no subclasses: the same test as `kind is`
            value = event.value
            if not stack:
                if value:  # an empty document is a null scalar: nothing to read, not an error
                    document.top_kind, document.top_line = "scalar", _line(event)
                continue
            frame = stack[-1]
            if frame.kind != "map":
                continue
            if frame.expect_key:
                frame.key, frame.expect_key = value, False
                if frame.path == ():
                    document.has_sections |= value in _SECTIONS
                elif len(frame.path) == 1 and frame.path[0] in _SECTIONS and value is not None:
                    document.entries[(frame.path[0], value)] = [_line(event), {}]
                continue
            frame.expect_key = True
            if frame.path == ():
                if frame.key == "lockfileVersion":
                    document.version = value
                elif frame.key in _SECTIONS and value not in (None, "", "~", "null"):
                    raise LockfileError(
                        path, f"{frame.key!r} is not a mapping", line=_line(event)
                    )
            elif len(frame.path) == 2 and frame.path[0] in _SECTIONS and frame.key in _FIELDS:
                entry = document.entries.get((frame.path[0], frame.path[1]))
                if entry is not None and value is not None:
                    entry[1][frame.key] = value
    return documents


def parse(path: str, text: str) -> list[Dependency]:
    return parse_source(path, text.lstrip("\ufeff"))


def parse_source(path: str, source: str | IO[bytes]) -> list[Dependency]:
    """The parse from text or from a binary stream (a large file: libyaml reads it in chunks)."""
    try:
        documents = _read(path, source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).split("\n")[0]
        raise LockfileError(path, f"invalid YAML: {problem}", line=line) from None
    out: list[Dependency] = []
    found_any = False
    for document in documents:
        if document.top_kind is None:
            continue
        if document.top_kind != "map":
            raise LockfileError(
                path, "not a pnpm lockfile: the top level is not a mapping", line=document.top_line
            )
        if document.version is None and not document.has_sections:
            continue
        found_any = True
        out.extend(_dependencies(document))
    if not found_any:
        raise LockfileError(path, "not a pnpm lockfile: no lockfileVersion", line=1)
    return out


def _major(version: str | None) -> int:
    try:
        return int(float(str(version).strip("'\"")))
    except ValueError:
        return 9


def _dependencies(document: _Document) -> list[Dependency]:
    major = _major(document.version)
    out: list[Dependency] = []
    seen: set[tuple[str, str]] = set()
    # Entries come in document order; packages: precedes snapshots: in every pnpm version.
    ordered = sorted(document.entries.items(), key=lambda item: (_SECTIONS.index(item[0][0]), item[1][0]))
    for (section, key), (line, fields) in ordered:
        parsed = _package(key, fields, major)
        if parsed is None:
            continue
        if section == "snapshots" and parsed in seen:
            continue  # v9: already reported on its packages: line
        seen.add(parsed)
        out.append(Dependency(parsed[0], parsed[1], line, "npm", "locked"))
    return out


def _strip_peers(version: str, major: int) -> str:
    if major >= 6:
        paren = version.find("(")
        return version[:paren] if paren >= 0 else version
    underscore = version.find("_")
    return version[:underscore] if underscore >= 0 else version


def _package(key: str, fields: dict[str, str], major: int) -> tuple[str, str] | None:
    if key.startswith(("file:", "link:", "workspace:")):
        return None
    name, version = _split_key(key, major)
    if fields.get("name"):
        name = fields["name"]
    if fields.get("version") and (not version or not _VERSION_START.match(version)):
        version = fields["version"]
    if not name or not version or not _VERSION_START.match(version):
        return None
    return name, version


def _split_key(key: str, major: int) -> tuple[str, str]:
    bare = key[1:] if key.startswith("/") else key
    if major >= 6:
        head = bare.split("(", 1)[0]
        at = head.find("@", 1)
        if at < 0:
            return "", ""
        version = head[at + 1 :]
        if version.startswith("npm:"):  # an alias written into the key: alias@npm:real@1.2.3
            real = version[4:]
            real_at = real.find("@", 1)
            return (real[:real_at], real[real_at + 1 :]) if real_at > 0 else ("", "")
        return head[:at], version
    parts = bare.split("/")
    if bare.startswith("@"):
        if len(parts) < 3:
            return "", ""
        return "/".join(parts[:2]), _strip_peers(parts[2], major)
    if len(parts) < 2:
        return "", ""
    return parts[0], _strip_peers(parts[1], major)
