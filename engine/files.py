"""Files we create that hold findings or run data: private to the user (0600) from the first byte.

``os.open`` with mode 0o600 rather than ``write_text`` + ``chmod``: between those
two calls the file would exist world-readable under the default umask. An existing
file is truncated and its mode tightened too (it may have been created by an older
version, or by the user, with a wider mode).
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import InputError

PRIVATE = 0o600


def write_private(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` with mode 0600; an OSError becomes a one-line :class:`InputError`."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
        try:
            os.fchmod(fd, PRIVATE)
            with os.fdopen(fd, "w", encoding="utf-8", closefd=False) as handle:
                handle.write(text)
        finally:
            os.close(fd)
    except OSError as exc:
        raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def make_private_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) for private files, mode 0700 for what we create."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise InputError(f"{path}: cannot create directory ({exc.strerror or exc})") from None
    if not path.is_dir():
        raise InputError(f"{path}: not a directory")
    return path
