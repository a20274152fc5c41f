"""``bun.lock``: bun's text lockfile (JSONC: JSON with trailing commas, comments allowed).

Comments and trailing commas are removed with substitutions that keep every
newline, so the cleaned text parses with ``json`` and line numbers still refer
to the original file. Each ``packages`` member is
``"<key>": ["<name>@<version>", "<registry>", {meta}, "<integrity>"]``; the key
is the install path (``"parent/child"`` for a non-hoisted copy, an alias name
for aliases) and the first array element names the real package, so name and
version come from that element and the line from the key. Entries whose
resolution is not a registry version (``workspace:``, ``github:``, ``file:``,
``link:``, git and tarball URLs) are the project's own code or not an npm
version and are skipped. The binary ``bun.lockb`` is not supported.
"""

from __future__ import annotations

import re

from ..models import Dependency, LockfileError
from . import _jsonlines

_VERSION_START = re.compile(r"^\d")


def parse(path: str, text: str) -> list[Dependency]:
    text = _jsonlines.strip_jsonc(_jsonlines.strip_bom(text))
    doc = _jsonlines.loads(path, text)
    if not isinstance(doc, dict) or "lockfileVersion" not in doc:
        raise LockfileError(path, "not a bun.lock: no lockfileVersion at the top level", line=1)
    packages = doc.get("packages", {})
    if not isinstance(packages, dict):
        raise LockfileError(path, '"packages" is not an object')
    lines = _jsonlines.child_lines(text, doc, packages)
    out: list[Dependency] = []
    for key, entry in packages.items():
        line = lines.get(key, 1)
        if not isinstance(entry, list) or not entry or not isinstance(entry[0], str):
            raise LockfileError(
                path, f"package {key!r} is not an array starting with name@version", line=line
            )
        ident = entry[0]
        at = ident.find("@", 1)
        if at < 0:
            raise LockfileError(path, f"package {key!r}: {ident!r} is not name@version", line=line)
        name, version = ident[:at], ident[at + 1 :]
        if version.startswith("npm:"):
            real = version[4:]
            real_at = real.find("@", 1)
            if real_at > 0:
                name, version = real[:real_at], real[real_at + 1 :]
        if not _VERSION_START.match(version):
            continue
        out.append(Dependency(name, version, line, "npm", "locked"))
    return out
