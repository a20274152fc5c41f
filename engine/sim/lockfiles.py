"""Shared pieces of the lockfile writers, and the catalogue of formats.

Why writers of our own rather than ``json.dumps``/``yaml.dump``: the ground
truth must state the line on which each planted package is declared, and real
lockfiles have layouts no generic dumper reproduces (npm's 2-space JSON, yarn's
YAML-like v1 syntax, pnpm's blank lines between entries, bun's trailing commas).
So each writer emits lines itself and records, for every resolved package, the
1-based line of its record. The writers never read the scanner's parsers: the
generator is what those parsers are judged against.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache


@dataclass(frozen=True)
class Format:
    """One file format the scanner must understand."""

    key: str  # stable identifier, e.g. "npm-lock-v3"
    filename: str  # file name as it appears in repos
    ecosystem: str  # npm, pypi, go, cargo, rubygems, packagist
    syntax: str  # json, jsonc, yaml, toml, text: what a test parses it with


FORMATS: dict[str, Format] = {
    f.key: f
    for f in (
        Format("npm-lock-v1", "package-lock.json", "npm", "json"),
        Format("npm-lock-v2", "package-lock.json", "npm", "json"),
        Format("npm-lock-v3", "package-lock.json", "npm", "json"),
        Format("npm-shrinkwrap", "npm-shrinkwrap.json", "npm", "json"),
        Format("yarn-v1", "yarn.lock", "npm", "text"),
        Format("yarn-berry", "yarn.lock", "npm", "yaml"),
        Format("pnpm-v5", "pnpm-lock.yaml", "npm", "yaml"),
        Format("pnpm-v6", "pnpm-lock.yaml", "npm", "yaml"),
        Format("pnpm-v9", "pnpm-lock.yaml", "npm", "yaml"),
        Format("bun", "bun.lock", "npm", "jsonc"),
        Format("package-json", "package.json", "npm", "json"),
        Format("requirements", "requirements.txt", "pypi", "text"),
        Format("poetry", "poetry.lock", "pypi", "toml"),
        Format("pipfile-lock", "Pipfile.lock", "pypi", "json"),
        Format("uv", "uv.lock", "pypi", "toml"),
        Format("pyproject-pep621", "pyproject.toml", "pypi", "toml"),
        Format("pyproject-poetry", "pyproject.toml", "pypi", "toml"),
        Format("go-mod", "go.mod", "go", "text"),
        Format("go-sum", "go.sum", "go", "text"),
        Format("cargo", "Cargo.lock", "cargo", "toml"),
        Format("gemfile-lock", "Gemfile.lock", "rubygems", "text"),
        Format("composer", "composer.lock", "packagist", "json"),
    )
}


@dataclass
class Rendered:
    """A written file: its text and, per (package, version), the line of its record.

    ``records`` keeps the first line (lowest) when a package version appears in
    several records of the file (npm nested installs, pnpm peer variants).
    """

    text: str
    records: dict[tuple[str, str], int] = field(default_factory=dict)

    def mark(self, package: str, version: str, line: int) -> None:
        self.records.setdefault((package, version), line)


def to_bytes(text: str, crlf: bool = False) -> bytes:
    if crlf:
        text = text.replace("\n", "\r\n")
    return text.encode()


@lru_cache(maxsize=65536)
def digest(kind: str, seed: str) -> bytes:
    """Stable fake digest bytes (sha1/sha256/sha512) for a package artifact."""
    return hashlib.new(kind, seed.encode()).digest()


def sri_sha512(name: str, version: str) -> str:
    """An npm ``integrity`` value (Subresource Integrity, sha512)."""
    return "sha512-" + base64.b64encode(digest("sha512", f"{name}@{version}")).decode()


def hex_digest(kind: str, seed: str) -> str:
    return digest(kind, seed).hex()


def npm_tarball(name: str, version: str, registry: str = "https://registry.npmjs.org") -> str:
    base = name.rsplit("/", 1)[-1]
    return f"{registry}/{name}/-/{base}-{version}.tgz"


@lru_cache(maxsize=1 << 17)
def q(s: str) -> str:
    """A JSON string literal (cached: lockfiles repeat names, versions and URLs)."""
    return json.dumps(s)


def _literal(value: object) -> str:
    if isinstance(value, str):
        return q(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


class JsonWriter:
    """Emit pretty JSON line by line, remembering the line of chosen keys.

    ``obj(key)``/``arr(key)`` open a container, ``end()`` closes it, ``val``
    writes a member; commas are placed when the next sibling arrives (or, with
    ``trailing_commas``, after every member as bun writes them).
    """

    def __init__(self, indent: int = 2, trailing_commas: bool = False) -> None:
        self.lines: list[str] = []
        self._indent = " " * indent
        self._trailing = trailing_commas
        self._stack: list[tuple[str, bool]] = []  # (closing char, has members)

    @property
    def line_no(self) -> int:
        """1-based number of the last line written."""
        return len(self.lines)

    def _member(self, text: str) -> int:
        depth = len(self._stack)
        if self._stack:
            close, has = self._stack[-1]
            if has and not self._trailing:
                self.lines[-1] += ","
            self._stack[-1] = (close, True)
        self.lines.append(self._indent * depth + (text + "," if self._trailing and depth else text))
        return len(self.lines)

    def _key(self, key: str | None) -> str:
        return "" if key is None else q(key) + ": "

    def val(self, key: str | None, value: object) -> int:
        return self._member(self._key(key) + _literal(value))

    def raw(self, key: str | None, literal: str) -> int:
        """A member whose value is already JSON text (kept on one line)."""
        return self._member(self._key(key) + literal)

    def obj(self, key: str | None = None) -> int:
        line = self._open(self._key(key) + "{", "}")
        return line

    def arr(self, key: str | None = None) -> int:
        return self._open(self._key(key) + "[", "]")

    def _open(self, text: str, close: str) -> int:
        depth = len(self._stack)
        if self._stack:
            c, has = self._stack[-1]
            if has and not self._trailing:
                self.lines[-1] += ","
            self._stack[-1] = (c, True)
        self.lines.append(self._indent * depth + text)
        self._stack.append((close, False))
        return len(self.lines)

    def end(self) -> None:
        close, has = self._stack.pop()
        depth = len(self._stack)
        if not has:  # empty container stays on its opening line: {} / []
            self.lines[-1] += close
            if self._trailing and depth:
                self.lines[-1] += ","
            return
        self.lines.append(self._indent * depth + close + ("," if self._trailing and depth else ""))

    def mapping(self, key: str | None, items: Mapping[str, object]) -> int:
        """An object of scalar members (the usual ``dependencies`` map)."""
        line = self.obj(key)
        for k, v in items.items():
            self.val(k, v)
        self.end()
        return line

    def text(self) -> str:
        assert not self._stack, "unclosed JSON container"
        return "\n".join(self.lines) + "\n"
