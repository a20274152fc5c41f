"""``package.json``: declared npm ranges.

Each member of ``dependencies``, ``devDependencies``, ``optionalDependencies``
and ``peerDependencies`` becomes a ``declared`` dependency whose version is the
range as written; matching reports it when a compromised version satisfies the
range. ``npm:real@range`` aliases report the real package. Specs that are not
registry ranges (``workspace:``, ``file:``, ``link:``, git, URLs, GitHub
``user/repo``) are skipped: no registry version can satisfy them. Dist-tags
(``latest``) are kept — they are not ranges, so they never match, but the
dependency is still visible to callers.
"""

from __future__ import annotations

import re

from ..models import Dependency, LockfileError
from . import _jsonlines

SECTIONS = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies")
_NOT_REGISTRY = re.compile(
    r"^(?:workspace:|file:|link:|portal:|patch:|git\+|git:|github:|gitlab:|bitbucket:|https?:|[\w.-]+/[\w.-]+(?:#.*)?$)"
)


def parse(path: str, text: str) -> list[Dependency]:
    text = _jsonlines.strip_bom(text)
    doc = _jsonlines.loads(path, text)
    if not isinstance(doc, dict):
        raise LockfileError(path, "package.json: the top level is not an object", line=1)
    lines = _jsonlines.member_lines(text, doc, scalars=True)
    out: list[Dependency] = []
    for section in SECTIONS:
        deps = doc.get(section)
        if deps is None:
            continue
        if not isinstance(deps, dict):
            raise LockfileError(path, f"{section!r} is not an object", line=lines.get((id(doc), section)))
        for name, spec in deps.items():
            line = lines.get((id(deps), name), 1)
            if not isinstance(spec, str):
                raise LockfileError(path, f"{section}.{name}: the version range is not a string", line=line)
            spec = spec.strip()
            real = name
            if spec.startswith("npm:"):
                target = spec[4:]
                at = target.find("@", 1)
                real, spec = (target[:at], target[at + 1 :]) if at > 0 else (target, "*")
            if _NOT_REGISTRY.match(spec):
                continue
            out.append(Dependency(real, spec, line, "npm", "declared"))
    out.sort(key=lambda dep: dep.line)
    return out
