"""npm range semantics, for the generator's ground truth of ``declared`` findings.

Written here rather than borrowed from the scanner on purpose: the truth must
not share a bug with the code it judges. Covers what the generator writes and
what package.json files commonly hold: exact versions (``1.2.3``, ``=1.2.3``,
``v1.2.3``), ``^`` and ``~`` (with node-semver's ``^0.x`` / ``^0.0.x`` rules),
x-ranges (``1.2.x``, ``1.x``, ``*``), comparators (``>=``, ``>``, ``<``,
``<=``) joined by spaces, hyphen ranges and ``||`` alternatives. Versions are
plain ``MAJOR.MINOR.PATCH`` (the IOC list has no prereleases).
"""

from __future__ import annotations

Version = tuple[int, int, int]
_INF = 1 << 62


def parse_version(v: str) -> Version:
    major, minor, patch = (int(p) for p in v.strip().lstrip("=v").split("."))
    return major, minor, patch


def _partial(v: str) -> list[int | None]:
    """``1.2`` -> [1, 2, None]; ``1.x`` -> [1, None, None]."""
    out: list[int | None] = []
    for p in v.lstrip("=v").split(".")[:3]:
        out.append(None if p in ("x", "X", "*", "") else int(p))
    while len(out) < 3:
        out.append(None)
    # anything after a wildcard is a wildcard too
    for i in range(3):
        if out[i] is None:
            out[i:] = [None] * (3 - i)
            break
    return out


def _bounds(comp: str) -> tuple[Version, bool, Version, bool]:
    """One comparator as (low, low inclusive, high, high inclusive)."""
    lo: Version = (0, 0, 0)
    hi: Version = (_INF, 0, 0)
    for op in (">=", "<=", ">", "<", "^", "~", "="):
        if comp.startswith(op):
            rest = comp[len(op) :].strip()
            break
    else:
        op, rest = "", comp
    ma, mi, pa = _partial(rest)
    if op in ("", "="):
        if ma is None:
            return lo, True, hi, False
        if mi is None:
            return (ma, 0, 0), True, (ma + 1, 0, 0), False
        if pa is None:
            return (ma, mi, 0), True, (ma, mi + 1, 0), False
        return (ma, mi, pa), True, (ma, mi, pa), True
    if op == "^":
        base = (ma or 0, mi or 0, pa or 0)
        if ma is None:
            return lo, True, hi, False
        if ma > 0 or mi is None:
            return base, True, (ma + 1, 0, 0), False
        if mi > 0 or pa is None:
            return base, True, (0, mi + 1, 0), False
        return base, True, (0, 0, pa + 1), False
    if op == "~":
        if ma is None:
            return lo, True, hi, False
        base = (ma, mi or 0, pa or 0)
        if mi is None:
            return base, True, (ma + 1, 0, 0), False
        return base, True, (ma, mi + 1, 0), False
    # inequalities with partial versions, as node-semver desugars them
    if ma is None:
        return (lo, True, hi, False) if op in (">=", "<=") else ((0, 0, 0), True, (0, 0, 0), False)
    filled = (ma, mi or 0, pa or 0)
    if op == ">=":
        return filled, True, hi, False
    if op == "<":
        return lo, True, filled, False
    if op == ">":
        if mi is None:
            return (ma + 1, 0, 0), True, hi, False
        if pa is None:
            return (ma, mi + 1, 0), True, hi, False
        return filled, False, hi, False
    # "<="
    if mi is None:
        return lo, True, (ma + 1, 0, 0), False
    if pa is None:
        return lo, True, (ma, mi + 1, 0), False
    return lo, True, filled, True


def _in(v: Version, b: tuple[Version, bool, Version, bool]) -> bool:
    lo, lo_inc, hi, hi_inc = b
    return (v > lo or (lo_inc and v == lo)) and (v < hi or (hi_inc and v == hi))


def satisfies(version: str, spec: str) -> bool:
    """Whether ``version`` is inside the npm range ``spec``."""
    v = parse_version(version)
    for alt in spec.split("||"):
        alt = alt.strip()
        if " - " in alt:
            a, b = (s.strip() for s in alt.split(" - ", 1))
            comps = [">=" + a, "<=" + b]
        else:
            # "> = 1.2.3" style spacing is rare; join an operator with its operand
            tokens = alt.split()
            comps, pending = [], ""
            for t in tokens:
                if t in (">=", "<=", ">", "<", "=", "^", "~"):
                    pending = t
                    continue
                comps.append(pending + t)
                pending = ""
            if not comps:
                comps = ["*"]
        if all(_in(v, _bounds(c)) for c in comps):
            return True
    return False
