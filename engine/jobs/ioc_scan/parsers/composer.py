"""``composer.lock``: ``packages`` and ``packages-dev``, reported on each package's ``"name":`` line.

Composer writes versions as tagged (``v5.4.0`` or ``5.4.0``); they are kept as
written and matching ignores a leading ``v`` for packagist.
"""

from __future__ import annotations

from ..models import Dependency, LockfileError
from . import _jsonlines

SECTIONS = ("packages", "packages-dev")


def parse(path: str, text: str) -> list[Dependency]:
    text = _jsonlines.strip_bom(text)
    doc = _jsonlines.loads(path, text)
    if not isinstance(doc, dict):
        raise LockfileError(path, "not a composer.lock: the top level is not an object", line=1)
    lines = _jsonlines.member_lines(text, doc, scalars=True)
    out: list[Dependency] = []
    for section in SECTIONS:
        packages = doc.get(section)
        if packages is None:
            continue
        if not isinstance(packages, list):
            raise LockfileError(path, f"{section!r} is not an array", line=lines.get((id(doc), section)))
        for index, package in enumerate(packages):
            if not isinstance(package, dict) or not isinstance(package.get("name"), str):
                raise LockfileError(
                    path, f"{section}[{index}] has no name", line=lines.get((id(doc), section))
                )
            line = lines.get((id(package), "name"), 1)
            version = package.get("version")
            if not isinstance(version, str) or not version:
                raise LockfileError(path, f"{package['name']} has no version", line=line)
            out.append(Dependency(package["name"], version, line, "packagist", "locked"))
    return out
