"""npm semver ranges: does a version satisfy a range as npm would decide?

A declared dependency in ``package.json`` is a range (``^1.2.0``, ``~1.2``,
``1.x || >=2.1 <3``); the scan must say whether a compromised *exact* version
satisfies it. This module is written here rather than taken from a library on
purpose: npm's grammar is small and fully specified by node-semver (carets with
the 0.x special cases, tildes, x-ranges, hyphen ranges, ``||``, primitive
comparators and the prerelease rule), while the Python packages that exist
either implement PEP 440 (``packaging``, wrong semantics for npm) or a semver
*version* model without npm's range sugar. Getting ``^0.0.3`` or
``<1.2`` (which means ``<1.2.0-0``) subtly wrong would silently miss or invent
findings, so the desugaring rules below follow node-semver's ``Range`` class
clause by clause and are pinned by a table of cases in the tests.

Every range desugars into a disjunction (``||``) of comparator sets; a
comparator set is a conjunction of primitive comparators (``<``, ``<=``,
``>``, ``>=``, ``=``) on full versions. The prerelease rule: a version with a
prerelease tag (``1.2.3-beta.1``) only satisfies a set if some comparator of
that set names the same ``major.minor.patch`` with a prerelease, unless
``include_prerelease`` is asked for. Build metadata (``+build``) is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["InvalidRange", "InvalidVersion", "Range", "Version", "parse_range", "satisfies", "valid_range"]


class InvalidVersion(ValueError):
    """Not a semver version (``1.2.3``, ``v1.2.3-rc.1+build``)."""


class InvalidRange(ValueError):
    """Not an npm range (dist-tags like ``latest`` and URLs are not ranges)."""


_NUM = r"0|[1-9]\d*"
_PRE_ID = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
_VERSION_RE = re.compile(
    rf"^\s*[v=]?\s*({_NUM})\.({_NUM})\.({_NUM})"
    rf"(?:-?({_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?\s*$"
)
# A partial version as ranges allow it: 1, 1.2, 1.x, 1.2.*, x, with optional prerelease/build.
_XID = r"(?:0|[1-9]\d*|[xX*])"
_PARTIAL = (
    rf"[v=\s]*({_XID})(?:\.({_XID})(?:\.({_XID})"
    rf"(?:-?({_PRE_ID}(?:\.{_PRE_ID})*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?)?"
)
_PARTIAL_RE = re.compile(rf"^{_PARTIAL}$")
_HYPHEN_RE = re.compile(rf"^\s*{_PARTIAL}\s+-\s+{_PARTIAL}\s*$")
_COMPARATOR_RE = re.compile(r"^(~>?|\^|<=|>=|<|>|=)?\s*(.*)$")


@dataclass(frozen=True, order=False, slots=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        found = _VERSION_RE.match(text)
        if not found:
            raise InvalidVersion(f"not a semver version: {text!r}")
        major, minor, patch, pre, _build = found.groups()
        return cls(int(major), int(minor), int(patch), _prerelease_ids(pre))

    def _key(self) -> tuple:
        # A version without prerelease sorts after all its prereleases; numeric
        # identifiers sort before alphanumeric ones (semver 2.0.0 §11).
        if not self.prerelease:
            return (self.major, self.minor, self.patch, 1, ())
        ids = tuple((0, part, "") if isinstance(part, int) else (1, 0, part) for part in self.prerelease)
        return (self.major, self.minor, self.patch, 0, ids)

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __le__(self, other: Version) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: Version) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: Version) -> bool:
        return self._key() >= other._key()

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{'.'.join(map(str, self.prerelease))}" if self.prerelease else core


def _prerelease_ids(pre: str | None) -> tuple[int | str, ...]:
    if not pre:
        return ()
    return tuple(int(part) if part.isdigit() else part for part in pre.split("."))


@dataclass(frozen=True, slots=True)
class _Comparator:
    op: str  # one of < <= > >= =
    version: Version

    def test(self, v: Version) -> bool:
        if self.op == "=":
            return v._key() == self.version._key()
        if self.op == "<":
            return v < self.version
        if self.op == "<=":
            return v <= self.version
        if self.op == ">":
            return v > self.version
        return v >= self.version


_ANY = (_Comparator(">=", Version(0, 0, 0)),)
_NOTHING = (_Comparator("<", Version(0, 0, 0, (0,))),)


@dataclass(frozen=True, slots=True)
class Range:
    """A parsed npm range: a disjunction of comparator sets."""

    raw: str
    sets: tuple[tuple[_Comparator, ...], ...]

    def test(self, version: str | Version, *, include_prerelease: bool = False) -> bool:
        if isinstance(version, str):
            try:
                version = Version.parse(version)
            except InvalidVersion:
                return False
        return any(_set_allows(comparators, version, include_prerelease) for comparators in self.sets)


def _set_allows(comparators: tuple[_Comparator, ...], v: Version, include_prerelease: bool) -> bool:
    if not all(c.test(v) for c in comparators):
        return False
    if not v.prerelease or include_prerelease:
        return True
    # The prerelease rule: 1.2.3-beta only counts when the set itself opts into
    # prereleases of that very major.minor.patch (e.g. >=1.2.3-alpha <1.3.0).
    return any(
        c.version.prerelease
        and (c.version.major, c.version.minor, c.version.patch) == (v.major, v.minor, v.patch)
        for c in comparators
    )


@lru_cache(maxsize=4096)
def parse_range(text: str) -> Range:
    """Parse an npm range; raise :class:`InvalidRange` for anything npm would not accept."""
    if not isinstance(text, str):
        raise InvalidRange(f"not a range: {text!r}")
    sets = tuple(_parse_set(part.strip(), text) for part in text.split("||"))
    return Range(text, sets)


def valid_range(text: str) -> bool:
    try:
        parse_range(text)
    except InvalidRange:
        return False
    return True


def satisfies(version: str, range_text: str, *, include_prerelease: bool = False) -> bool:
    """True when ``version`` satisfies ``range_text``; False for an invalid version or range."""
    try:
        parsed = parse_range(range_text)
    except InvalidRange:
        return False
    return parsed.test(version, include_prerelease=include_prerelease)


def _parse_set(text: str, whole: str) -> tuple[_Comparator, ...]:
    if text == "":
        return _ANY
    hyphen = _HYPHEN_RE.match(text)
    if hyphen:
        return _hyphen(hyphen.groups())
    # Glue operators to their version ("> = 1.2" is not valid, ">= 1.2" is).
    tokens = re.sub(r"(~>?|\^|<=|>=|<|>|=)\s+", r"\1", text).split()
    comparators: list[_Comparator] = []
    for token in tokens:
        comparators.extend(_parse_comparator(token, whole))
    return tuple(comparators) or _ANY


def _parts(match_groups) -> tuple[int | None, int | None, int | None, tuple]:
    def num(part: str | None) -> int | None:
        return None if part is None or part in ("x", "X", "*") else int(part)

    major, minor, patch, pre = match_groups[:4]
    return num(major), num(minor), num(patch), _prerelease_ids(pre)


def _parse_comparator(token: str, whole: str) -> tuple[_Comparator, ...]:
    op_match = _COMPARATOR_RE.match(token)
    assert op_match is not None  # the pattern accepts every string
    op, rest = op_match.group(1) or "", op_match.group(2)
    partial = _PARTIAL_RE.match(rest)
    if not partial or rest.strip() == "":
        raise InvalidRange(f"not an npm range: {whole!r}")
    major, minor, patch, pre = _parts(partial.groups())
    if op.startswith("~"):
        return _tilde(major, minor, patch, pre)
    if op == "^":
        return _caret(major, minor, patch, pre)
    return _xrange(op, major, minor, patch, pre)


def _upper(major: int, minor: int = 0, patch: int = 0) -> Version:
    # "-0" is the lowest prerelease, so "<2.0.0-0" excludes 2.0.0's prereleases too.
    return Version(major, minor, patch, (0,))


def _tilde(major, minor, patch, pre) -> tuple[_Comparator, ...]:
    if major is None:
        return _ANY
    if minor is None:
        return (_Comparator(">=", Version(major, 0, 0)), _Comparator("<", _upper(major + 1)))
    if patch is None:
        return (_Comparator(">=", Version(major, minor, 0)), _Comparator("<", _upper(major, minor + 1)))
    return (_Comparator(">=", Version(major, minor, patch, pre)), _Comparator("<", _upper(major, minor + 1)))


def _caret(major, minor, patch, pre) -> tuple[_Comparator, ...]:
    if major is None:
        return _ANY
    if minor is None:
        return (_Comparator(">=", Version(major, 0, 0)), _Comparator("<", _upper(major + 1)))
    if patch is None:
        if major == 0:
            return (_Comparator(">=", Version(0, minor, 0)), _Comparator("<", _upper(0, minor + 1)))
        return (_Comparator(">=", Version(major, minor, 0)), _Comparator("<", _upper(major + 1)))
    low = _Comparator(">=", Version(major, minor, patch, pre))
    if major != 0:
        return (low, _Comparator("<", _upper(major + 1)))
    if minor != 0:
        return (low, _Comparator("<", _upper(0, minor + 1)))
    return (low, _Comparator("<", _upper(0, 0, patch + 1)))


def _xrange(op, major, minor, patch, pre) -> tuple[_Comparator, ...]:
    if major is None:
        # "*", ">=*", "<=*" accept everything; "<*" and ">*" accept nothing.
        return _NOTHING if op in ("<", ">") else _ANY
    if minor is not None and patch is not None:
        return (_Comparator(op or "=", Version(major, minor, patch, pre)),)
    # A partial version (1 or 1.2) with an operator, as node-semver desugars it.
    if op in ("", "="):
        if minor is None:
            return (_Comparator(">=", Version(major, 0, 0)), _Comparator("<", _upper(major + 1)))
        return (_Comparator(">=", Version(major, minor, 0)), _Comparator("<", _upper(major, minor + 1)))
    if op == ">":
        if minor is None:
            return (_Comparator(">=", Version(major + 1, 0, 0)),)
        return (_Comparator(">=", Version(major, minor + 1, 0)),)
    if op == ">=":
        return (_Comparator(">=", Version(major, minor or 0, 0)),)
    if op == "<":
        return (_Comparator("<", _upper(major, minor or 0, 0)),)
    # "<=": everything up to the end of the partial range.
    if minor is None:
        return (_Comparator("<", _upper(major + 1)),)
    return (_Comparator("<", _upper(major, minor + 1)),)


def _hyphen(groups) -> tuple[_Comparator, ...]:
    fmaj, fmin, fpat, fpre = _parts(groups[0:4])
    tmaj, tmin, tpat, tpre = _parts(groups[4:8])
    if fmaj is None:
        low: tuple[_Comparator, ...] = ()
    else:
        low = (_Comparator(">=", Version(fmaj, fmin or 0, fpat or 0, fpre if fpat is not None else ())),)
    if tmaj is None:
        high: tuple[_Comparator, ...] = ()
    elif tmin is None:
        high = (_Comparator("<", _upper(tmaj + 1)),)
    elif tpat is None:
        high = (_Comparator("<", _upper(tmaj, tmin + 1)),)
    else:
        high = (_Comparator("<=", Version(tmaj, tmin, tpat, tpre)),)
    return (low + high) or _ANY
