"""Go: ``go.mod`` and ``go.sum``.

``go.mod`` lists exact module versions (since Go 1.17 every module in the
build list appears), so its requirements are ``locked``. Both the one-line
``require mod v1.2.3`` and ``require ( ... )`` blocks are read; ``// indirect``
and other comments are ignored. A ``replace old [v] => new v2`` directive whose
target is a module (not a local ``./path``) adds the target at the replace
line — that module is what gets built; the replaced requirement is still
reported on its own line, since the file does require it. ``exclude``,
``retract``, ``tool``, ``module``, ``go`` and ``toolchain`` lines carry no
dependency.

``go.sum`` holds up to two lines per module version (``v1.2.3 h1:...`` for the
module zip and ``v1.2.3/go.mod h1:...``); each module version is reported once,
on its first line.
"""

from __future__ import annotations

from ..models import Dependency, LockfileError

_DIRECTIVES = {
    "module",
    "go",
    "toolchain",
    "require",
    "replace",
    "exclude",
    "retract",
    "tool",
    "godebug",
    "ignore",
}


def _strip_comment(line: str) -> str:
    cut = line.find("//")
    return (line[:cut] if cut >= 0 else line).strip()


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in '"`':
        return token[1:-1]
    return token


def parse_go_mod(path: str, text: str) -> list[Dependency]:
    out: list[Dependency] = []
    block: str | None = None
    for number, raw in enumerate(text.lstrip("\ufeff").split("\n"), 1):
        line = _strip_comment(raw.rstrip("\r"))
        if not line:
            continue
        if block is not None:
            if line == ")":
                block = None
                continue
            _directive(path, block, line, number, out)
            continue
        verb, _, rest = line.replace("\t", " ").partition(" ")
        rest = rest.strip()
        if verb.endswith("("):  # "require(" without a space
            verb, rest = verb[:-1], "("
        if verb not in _DIRECTIVES:
            raise LockfileError(path, f"unknown go.mod directive {verb!r}", line=number)
        if rest == "(":
            block = verb
            continue
        _directive(path, verb, rest, number, out)
    if block is not None:
        raise LockfileError(path, f"unterminated {block} ( block")
    return out


def _directive(path: str, verb: str, rest: str, number: int, out: list[Dependency]) -> None:
    if verb == "require":
        tokens = rest.split()
        if len(tokens) != 2:
            raise LockfileError(path, f"require expects 'module version', got {rest!r}", line=number)
        out.append(Dependency(_unquote(tokens[0]), tokens[1], number, "go", "locked"))
    elif verb == "replace":
        left, arrow, right = rest.partition("=>")
        if not arrow:
            raise LockfileError(path, f"replace without '=>': {rest!r}", line=number)
        target = right.split()
        if len(target) == 2 and not target[0].startswith((".", "/")):
            out.append(Dependency(_unquote(target[0]), target[1], number, "go", "locked"))


def parse_go_sum(path: str, text: str) -> list[Dependency]:
    out: list[Dependency] = []
    seen: set[tuple[str, str]] = set()
    for number, raw in enumerate(text.lstrip("\ufeff").split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        tokens = line.split()
        if len(tokens) != 3 or not tokens[2].startswith("h") or ":" not in tokens[2]:
            raise LockfileError(path, "expected 'module version hash'", line=number)
        module, version = tokens[0], tokens[1].removesuffix("/go.mod")
        if (module, version) in seen:
            continue
        seen.add((module, version))
        out.append(Dependency(module, version, number, "go", "locked"))
    return out
