"""Line numbers for JSON object members, at json-module speed.

The stdlib ``json`` module (C-accelerated, the only fast option) forgets where
things were, and a position-tracking parser in Python is ten times slower. So
we parse with ``json.loads`` and, separately, find the keys in the text with a
regex anchored on the rare ``": {`` / ``": [`` (or ``":``) sequence, stepping
back to the key's opening quote with ``str.rfind``. Regex engines crawl when
asked to tokenize every string of a 20 MB file; anchoring on the colon keeps
the pass to about half a second. Positions become line numbers incrementally
(``str.count`` of newlines between consecutive hits): linear, no per-line index.

Two ways to tie hits to parsed members:

- ``child_lines`` (the lockfile case, e.g. ``packages`` of package-lock.json):
  the wanted keys are looked up among the hits; when each appears exactly once
  the answer is certain (a real key is always a hit, so a unique hit is the
  real one). No walk of the parsed document is needed.
- ``member_lines`` (general): a pre-order walk of the parsed value meets members
  in exactly the order their keys appear (``json.loads`` keeps document order),
  so walk and hits are zipped and checked key by key.

A hit can be false in theory (an escaped ``\"`` followed by ``: {`` inside a
string value) and a key containing ``\"`` is cut short; either shows up as a
mismatch, and the pass is redone with a tokenizer that walks strings strictly
left to right (exact, slower). Duplicate keys (legal JSON, invalid lockfiles)
are absorbed by a per-key queue so lines stay close rather than failing.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

from ..models import LockfileError

_WS = r"[ \t\r\n]*"
_CONTAINER_COLON = re.compile(rf'"{_WS}:{_WS}[\[{{]')
_ANY_COLON = re.compile(rf'"{_WS}:')
_STRING = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"')
_AFTER_KEY = re.compile(rf"{_WS}:{_WS}(.)", re.S)

_COMMENT_START = re.compile(r"//|/\*")
_TRAILING_COMMA = re.compile(rf",(?={_WS}[}}\]])")

MemberLines = dict[tuple[int, str], int]


def strip_bom(text: str) -> str:
    return text[1:] if text.startswith("\ufeff") else text


def loads(path: str, text: str) -> Any:
    """``json.loads`` that raises :class:`LockfileError` with the line of the fault."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LockfileError(path, f"invalid JSON: {exc.msg}", line=exc.lineno) from None
    except RecursionError:
        raise LockfileError(path, "invalid JSON: nested too deeply") from None


def _inside_string(text: str, position: int) -> bool:
    """Is ``position`` inside a string? JSON strings never span lines, so only its line is looked at."""
    segment = text[text.rfind("\n", 0, position) + 1 : position]
    return '"' in segment and '"' in _STRING.sub("", segment)


def _remove(text: str, cuts: list[tuple[int, int]]) -> str:
    """Drop each ``[start, end)`` span but keep the newlines inside it (lines must not move)."""
    if not cuts:
        return text
    parts, last = [], 0
    for start, end in cuts:
        parts.append(text[last:start])
        parts.append("\n" * text.count("\n", start, end))
        last = end
    parts.append(text[last:])
    return "".join(parts)


def strip_jsonc(text: str) -> str:
    """Remove ``//`` and ``/* */`` comments and trailing commas, keeping every newline.

    Candidates are found by C-level regex search and only those are checked for
    being inside a string (a URL's ``//``), so the cost is per candidate, not
    per string: tokenizing every string of a large bun.lock in Python would
    dominate its parse time.
    """
    cuts: list[tuple[int, int]] = []
    covered = 0
    for found in _COMMENT_START.finditer(text):
        start = found.start()
        if start < covered or _inside_string(text, start):
            continue
        if found.group() == "//":
            end = text.find("\n", start)
            end = len(text) if end < 0 else end
        else:
            end = text.find("*/", start + 2)
            end = len(text) if end < 0 else end + 2
        cuts.append((start, end))
        covered = end
    text = _remove(text, cuts)
    commas = [
        (m.start(), m.end()) for m in _TRAILING_COMMA.finditer(text) if not _inside_string(text, m.start())
    ]
    return _remove(text, commas)


def _unescape(raw: str) -> str:
    if "\\" not in raw:
        return raw
    try:
        return json.loads(f'"{raw}"')
    except json.JSONDecodeError:
        return raw  # a false hit spanning structure; the zip check rejects it


def _members(root: Any, scalars: bool) -> list[tuple[int, str]]:
    """Members (id of parent object, key) in document order, pre-order."""
    out: list[tuple[int, str]] = []
    if not isinstance(root, dict | list):
        return out
    stack: list[tuple[Any, Any]] = [(root, iter(root.items()) if isinstance(root, dict) else iter(root))]
    while stack:
        parent, items = stack[-1]
        is_dict = isinstance(parent, dict)
        for item in items:
            if is_dict:
                key, value = item
                container = isinstance(value, dict | list)
                if container or scalars:
                    out.append((id(parent), key))
            else:
                value = item
                container = isinstance(value, dict | list)
            if container and value:
                stack.append((value, iter(value.items()) if isinstance(value, dict) else iter(value)))
                break
        else:
            stack.pop()
    return out


def _fast_hits(text: str, scalars: bool) -> list[tuple[str, int]]:
    pattern = _ANY_COLON if scalars else _CONTAINER_COLON
    hits = []
    line, last = 1, 0
    count, rfind = text.count, text.rfind
    for found in pattern.finditer(text):
        end = found.start()
        start = rfind('"', 0, end)
        if start < 0:
            continue
        line += count("\n", last, start)
        last = start
        hits.append((text[start + 1 : end], line))
    return hits


def _exact_hits(text: str, scalars: bool) -> list[tuple[str, int]]:
    hits = []
    line, last = 1, 0
    count = text.count
    for found in _STRING.finditer(text):
        after = _AFTER_KEY.match(text, found.end())
        if after is None or (not scalars and after.group(1) not in "[{"):
            continue
        start = found.start()
        line += count("\n", last, start)
        last = start
        hits.append((found.group(0)[1:-1], line))
    return hits


def member_lines(text: str, root: Any, *, scalars: bool = False) -> MemberLines:
    """Map ``(id(parent_object), key)`` to the 1-based line of that key in ``text``.

    ``root`` must be ``json.loads(text)`` (kept alive while the map is used:
    the map is keyed by object identity).
    """
    members = _members(root, scalars)
    hits = _fast_hits(text, scalars)
    if len(hits) == len(members) and all(
        raw == key or _unescape(raw) == key for (raw, _), (_, key) in zip(hits, members, strict=True)
    ):
        return {member: line for member, (_, line) in zip(members, hits, strict=True)}
    queues: dict[str, deque[int]] = defaultdict(deque)
    for raw, line in _exact_hits(text, scalars):
        queues[_unescape(raw)].append(line)
    lines: MemberLines = {}
    for parent, key in members:
        queue = queues.get(key)
        if queue:
            lines[(parent, key)] = queue.popleft()
    return lines


def child_lines(text: str, root: Any, parent: dict, keys: Iterable[str] | None = None) -> dict[str, int]:
    """Lines of ``parent``'s members whose values are objects or arrays (``keys`` to restrict).

    ``parent`` must be an object inside ``root = json.loads(text)``.
    """
    wanted = set(parent if keys is None else keys)
    found: dict[str, int] = {}
    unique = True
    for raw, line in _fast_hits(text, scalars=False):
        key = _unescape(raw) if "\\" in raw else raw
        if key in wanted:
            if key in found:
                unique = False
                break
            found[key] = line
    if unique and len(found) == len(wanted):
        return found
    members = member_lines(text, root)
    return {key: members[(id(parent), key)] for key in wanted if (id(parent), key) in members}
