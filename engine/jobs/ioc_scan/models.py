"""The values that flow through an IOC scan: dependencies, IOCs, matches, parse failures.

Parsers turn a file into :class:`Dependency` values, IOC sources into
:class:`IOC` values, and matching turns the two into :class:`IOCMatch` — the
seed's name for a finding, kept so that code written against the seed reads
naturally. Everything is a frozen dataclass: values are cached by blob sha,
compared as sets against the simulator's truth and deduplicated, so they must
be hashable and must not change once made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from engine.errors import InputError

Ecosystem = Literal["npm", "pypi", "go", "cargo", "rubygems", "packagist"]
Kind = Literal["locked", "declared"]

ECOSYSTEMS: tuple[str, ...] = ("npm", "pypi", "go", "cargo", "rubygems", "packagist")
KINDS: tuple[str, ...] = ("locked", "declared")


@dataclass(frozen=True, slots=True)
class Dependency:
    """One package a file pins or declares.

    ``version`` is an exact version for ``kind="locked"`` and the range as
    written (npm range, PEP 440 specifier set, ``||``-joined alternatives) for
    ``kind="declared"``. ``line`` is 1-based; see the parsers package docstring
    for which line each format reports.
    """

    name: str
    version: str
    line: int
    ecosystem: str
    kind: str = "locked"

    def to_dict(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies every field, and a scan stores every
        # dependency of every lockfile it parses (asdict was a third of an org scan's CPU)
        return {"name": self.name, "version": self.version, "line": self.line, "ecosystem": self.ecosystem,
                "kind": self.kind}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dependency:
        return cls(
            data["name"], data["version"], int(data["line"]), data["ecosystem"], data.get("kind", "locked")
        )


@dataclass(frozen=True, slots=True)
class IOC:
    """A compromised package as one source lists it.

    ``versions`` is None when the source says ``*`` (every version is bad).
    ``name`` is kept as the source spells it; lookups go through the
    ecosystem's name normalisation (see ``iocs.normalize_name``).
    """

    ecosystem: str
    name: str
    versions: frozenset[str] | None
    source: str


@dataclass(frozen=True, slots=True)
class IOCMatch:
    """A finding: ``repo``'s file ``file_path`` pins or admits a compromised version.

    For ``kind="locked"`` ``version`` is the version the file pins; for
    ``kind="declared"`` it is the compromised version that satisfies the
    declared range (``"*"`` when the IOC condemns every version).
    """

    repo: str
    file_path: str
    line_number: int
    package_name: str
    version: str
    ecosystem: str
    ioc_source: str
    kind: str = "locked"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IOCMatch:
        return cls(
            repo=data["repo"],
            file_path=data["file_path"],
            line_number=int(data["line_number"]),
            package_name=data["package_name"],
            version=data["version"],
            ecosystem=data["ecosystem"],
            ioc_source=data["ioc_source"],
            kind=data.get("kind", "locked"),
        )


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class LockfileError(InputError):
    """A manifest or lockfile that cannot be read; the scan records it and goes on.

    The message is one line naming the path and, when known, the line.
    """

    def __init__(self, path: str, reason: str, line: int | None = None) -> None:
        self.path = str(path)
        self.reason = _one_line(reason)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {self.reason}")


@dataclass(frozen=True, slots=True)
class ParseFailure:
    """A file the scan could not parse, as reports show it (repo, path, reason)."""

    repo: str
    file_path: str
    reason: str
    line: int | None = None

    @classmethod
    def from_error(cls, repo: str, error: LockfileError) -> ParseFailure:
        return cls(repo=repo, file_path=error.path, reason=error.reason, line=error.line)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DependencyList(list):
    """What a parser returns: a plain list of :class:`Dependency` plus ``notes``.

    Notes are things worth telling the user that are not errors, e.g. a
    ``-r other.txt`` include in a requirements file, which is reported and not
    followed (the included file is scanned on its own if discovery finds it).
    """

    notes: list[str]

    def __init__(self, items=(), notes=None) -> None:
        super().__init__(items)
        self.notes = list(notes or [])


__all__ = [
    "ECOSYSTEMS",
    "IOC",
    "KINDS",
    "Dependency",
    "DependencyList",
    "Ecosystem",
    "IOCMatch",
    "Kind",
    "LockfileError",
    "ParseFailure",
]
