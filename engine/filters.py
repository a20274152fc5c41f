"""Item filters: the small language ``replay --where`` (and any view that filters items) accepts.

Grammar::

    filter  := clause ("," clause)*
    clause  := field "=" value ("|" value)*
    field   := "error" | "lane" | "key" | "batch" | "status"

Clauses are ANDed; the ``|`` alternatives of one clause are ORed. Whitespace
around names and values is ignored. The fields:

``error``   the item's error class (``server``, ``timeout``, ``client``... see
            :class:`engine.errors.ErrorClass`)
``lane``    the lane the item ran in (``read``, ``graphql``, ``default``...)
``key``     a glob on the item key (``repo:acme/*``, ``file:*package-lock.json``);
            case-sensitive, ``*`` ``?`` ``[...]`` as in :mod:`fnmatch`
``batch``   the batch number the item last ran in
``status``  the HTTP status of the item's last attempt: ``404``, or a class
            such as ``5xx``

Examples: ``error=server``, ``error=server|timeout,lane=graphql``,
``key=repo:acme/svc-*,status=5xx``.

Hand-written rather than a parser library: five fields and one separator each,
and every mistake must become a one-line :class:`~engine.errors.InputError`
naming the clause at fault.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from engine.errors import ErrorClass, InputError

FIELDS = ("error", "lane", "key", "batch", "status")
_STATUS = re.compile(r"^[1-5](?:[0-9]{2}|xx)$")


@dataclass(frozen=True, slots=True)
class Clause:
    field: str
    values: tuple[str, ...]

    def matches(self, item: dict[str, Any]) -> bool:
        if self.field == "error":
            return (item.get("error_class") or "") in self.values
        if self.field == "lane":
            return (item.get("lane") or "") in self.values
        if self.field == "key":
            return any(fnmatch.fnmatchcase(item.get("key") or "", glob) for glob in self.values)
        if self.field == "batch":
            return str(item.get("batch_id")) in self.values
        status = item.get("http_status")
        if status is None:
            return False
        return any(str(status) == v or (v.endswith("xx") and str(status)[0] == v[0]) for v in self.values)


@dataclass(frozen=True, slots=True)
class ItemFilter:
    """A parsed filter; ``text`` is what the user wrote (kept in replay specs and the audit log)."""

    clauses: tuple[Clause, ...]
    text: str

    def matches(self, item: dict[str, Any]) -> bool:
        return all(clause.matches(item) for clause in self.clauses)

    @property
    def needs_status(self) -> bool:
        """Whether matching needs each item's last HTTP status (read from the attempts)."""
        return any(clause.field == "status" for clause in self.clauses)


def parse_filter(text: str) -> ItemFilter:
    """Parse ``field=value[,field=value]``; raise InputError naming the clause at fault."""
    clauses = []
    for raw in text.split(","):
        clause = raw.strip()
        if not clause:
            raise InputError(f"--where {text!r}: an empty clause (write field=value, joined by ',')")
        field, sep, value = clause.partition("=")
        field = field.strip().lower()
        if not sep:
            raise InputError(f"--where {text!r}: {clause!r} is not field=value")
        if field not in FIELDS:
            raise InputError(f"--where {text!r}: unknown field {field!r} (one of {', '.join(FIELDS)})")
        values = tuple(v.strip().lower() if field == "status" else v.strip() for v in value.split("|"))
        if not all(values):
            raise InputError(f"--where {text!r}: {clause!r} has an empty value")
        for v in values:
            _check(text, field, v)
        clauses.append(Clause(field, values))
    return ItemFilter(tuple(clauses), text.strip())


def _check(text: str, field: str, value: str) -> None:
    if field == "error" and value not in {c.value for c in ErrorClass}:
        raise InputError(f"--where {text!r}: unknown error class {value!r} "
                         f"(one of {', '.join(c.value for c in ErrorClass)})")
    if field == "batch" and not value.isdigit():
        raise InputError(f"--where {text!r}: batch {value!r} is not a batch number")
    if field == "status" and not _STATUS.match(value):
        raise InputError(f"--where {text!r}: status {value!r} is not an HTTP status (404) or class (5xx)")


__all__ = ["FIELDS", "Clause", "ItemFilter", "parse_filter"]
