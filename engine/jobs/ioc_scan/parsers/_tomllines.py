"""TOML helpers: parse with ``tomllib`` and find the line of each ``[[package]]`` table.

``tomllib`` keeps no positions. Lockfiles written by poetry, uv and cargo put
every package in its own ``[[package]]`` array-of-tables header, in the same
order as the parsed ``package`` list, so one regex pass over the headers gives
the lines (counted incrementally, linear in the file size). If the counts ever
disagree (a hand-edited file using an inline array), each package falls back to
the line of its ``name = "..."`` key, searched forward from the previous one.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

from ..models import LockfileError

_PACKAGE_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*package[ \t]*\]\][ \t]*(?:#[^\n]*)?\r?$", re.M)
_TOML_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def loads(path: str, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _TOML_AT_LINE.search(message)
        reason = _TOML_AT_LINE.sub("", message).strip()
        raise LockfileError(path, f"invalid TOML: {reason}", line=int(at.group(1)) if at else None) from None


def line_at(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def package_lines(text: str, packages: list[dict[str, Any]]) -> list[int]:
    """The 1-based line of each ``[[package]]`` table, in list order."""
    lines: list[int] = []
    line, last = 1, 0
    for found in _PACKAGE_HEADER.finditer(text):
        line += text.count("\n", last, found.start())
        last = found.start()
        lines.append(line)
    if len(lines) == len(packages):
        return lines
    out: list[int] = []
    cursor = 0
    for package in packages:
        name = package.get("name") if isinstance(package, dict) else None
        named = re.compile(rf"^[ \t]*name[ \t]*=[ \t]*[\"']{re.escape(str(name))}[\"']", re.M).search(
            text, cursor
        )
        if named is None:
            out.append(1)
            continue
        cursor = named.end()
        out.append(line_at(text, named.start()))
    return out
