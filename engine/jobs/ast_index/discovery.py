"""Walk a source tree one directory at a time, as the planner consumes it.

Nothing here holds the tree: :func:`walk` yields each directory's wanted files
(``os.scandir``, entries stat'ed once) and keeps only the stack of directories
still to visit and the ``.gitignore`` rules of the current ancestors.

Rules, in order: ``.git`` is never entered; links to directories are not followed
(a link cycle cannot trap the walk), links to files are indexed as files; every ``.gitignore`` from the root down
applies to the paths below it (gitignore semantics by ``pathspec``, negations
included); ``--exclude`` patterns are gitignore-style and relative to the root;
only files of a known language (:data:`~engine.jobs.ast_index.parse.LANGUAGES`)
are wanted. Files above the size limit are still yielded: the worker records
them as one error each ("above the size limit"), so a user sees what was left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import pathspec

from engine.errors import InputError
from engine.jobs.ast_index.parse import language_of

#: --order -> how a file's priority is computed (lower runs first)
ORDERS = ("size", "language", "mtime", "path")
LANGUAGE_RANK = {"python": 0, "typescript": 1, "tsx": 2, "javascript": 3, "go": 4}


@dataclass(slots=True)
class Found:
    name: str
    path: str            # relative to the root, '/'-separated
    language: str
    size: int
    mtime_ns: int


@dataclass(slots=True)
class Directory:
    path: str            # relative to the root ('' for the root itself)
    files: list[Found] = field(default_factory=list)
    error: str | None = None       # the directory could not be listed
    ignored: int = 0               # entries dropped by .gitignore or --exclude


def priority(found: Found, order: str) -> int:
    """Largest first for ``size`` (long files start early, so no core idles at the end);
    newest first for ``mtime``; a fixed language rank for ``language``."""
    if order == "size":
        return -found.size
    if order == "mtime":
        return -(found.mtime_ns // 1_000_000_000)
    if order == "language":
        return LANGUAGE_RANK.get(found.language, 9)
    return 0


def compile_patterns(patterns: list[str], source: str) -> pathspec.PathSpec | None:
    if not patterns:
        return None
    try:
        return pathspec.GitIgnoreSpec.from_lines(patterns)
    except Exception as exc:    # pathspec raises several types for a bad pattern
        raise InputError(f"{source}: bad pattern ({exc})") from None


def _gitignore(directory: str) -> pathspec.PathSpec | None:
    path = os.path.join(directory, ".gitignore")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except Exception:
        return None     # a broken .gitignore ignores nothing rather than stopping the index


def walk(root: str, *, exclude: pathspec.PathSpec | None = None) -> Iterator[Directory]:
    """Every directory under ``root`` (depth first), with its wanted files sorted by name."""
    # (relative dir, [(relative base dir of a .gitignore, its spec), ...] of the ancestors)
    stack: list[tuple[str, tuple[tuple[str, pathspec.PathSpec], ...]]] = [("", ())]
    while stack:
        rel, rules = stack.pop()
        absolute = os.path.join(root, rel) if rel else root
        spec = _gitignore(absolute)
        if spec is not None:
            rules = (*rules, (rel, spec))
        directory = Directory(rel)
        subdirs: list[str] = []
        try:
            with os.scandir(absolute) as entries:
                for entry in entries:
                    child = f"{rel}/{entry.name}" if rel else entry.name
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                        if entry.is_symlink():
                            if entry.is_dir():
                                continue      # never followed: a link cycle cannot trap the walk
                        elif not is_dir and not entry.is_file(follow_symlinks=False):
                            continue          # sockets, fifos, devices
                    except OSError:
                        continue
                    if is_dir and entry.name == ".git":
                        continue
                    if is_dir:
                        if _ignored(child + "/", rules, exclude):
                            directory.ignored += 1
                        else:
                            subdirs.append(child)
                        continue
                    language = language_of(entry.name)
                    if language is None:
                        continue
                    if _ignored(child, rules, exclude):
                        directory.ignored += 1
                        continue
                    try:
                        st = entry.stat()
                    except OSError:
                        size, mtime_ns = 0, 0        # a dangling link: the worker will say it cannot read it
                    else:
                        size, mtime_ns = st.st_size, st.st_mtime_ns
                    directory.files.append(Found(entry.name, child, language, size, mtime_ns))
        except OSError as exc:
            directory.error = f"cannot list directory: {exc.strerror or exc}"
        directory.files.sort(key=lambda f: f.name)
        yield directory
        stack.extend((d, rules) for d in sorted(subdirs, reverse=True))


def _ignored(path: str, rules: tuple[tuple[str, pathspec.PathSpec], ...],
             exclude: pathspec.PathSpec | None) -> bool:
    if exclude is not None and exclude.match_file(path):
        return True
    for base, spec in rules:
        relative = path[len(base) + 1:] if base else path
        if spec.match_file(relative):
            return True
    return False
