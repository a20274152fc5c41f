"""Load an org from a directory: each subfolder becomes a repository.

For ``batchdeck sim --repos-dir DIR``: lets a user serve their own fixture
repos (real lockfiles copied from an incident, say) through exactly the same
trees, blobs, contents and GraphQL paths as generated ones. Files are read
recursively, ``.git`` folders skipped, every repo's default branch is ``main``.

Ground truth is optional: ``DIR/_truth.json`` (at the top of DIR, beside the
repo folders) holds a list of truth dicts in the generator's shape
(``engine.sim.generate``); ``repo`` may be a bare repo name or ``owner/name``.
Loose files at the top of DIR are not repos and are ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.errors import InputError
from engine.sim.data import SimFile, SimOrg, SimRepo

TRUTH_FILE = "_truth.json"
_REQUIRED = ("repo", "path", "package", "version")


def load_repos_dir(path: str | Path, login: str = "acme") -> SimOrg:
    root = Path(path)
    if not root.exists():
        raise InputError(f"repos dir not found: {root}")
    if not root.is_dir():
        raise InputError(f"repos dir is not a directory: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name != ".git")
    if not folders:
        raise InputError(f"repos dir has no subfolders (one per repo expected): {root}")
    repos = [_load_repo(folder, login, 1_000 + i) for i, folder in enumerate(folders)]
    org = SimOrg(login, 1, repos)
    truth_path = root / TRUTH_FILE
    if truth_path.is_file():
        org.truth = _load_truth(truth_path, org)
    return org


def _load_repo(folder: Path, login: str, repo_id: int) -> SimRepo:
    files: dict[str, SimFile] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(folder).as_posix()
            try:
                content = full.read_bytes()
            except OSError as e:
                raise InputError(f"cannot read {full}: {e.strerror or e}") from None
            mode = "100755" if os.access(full, os.X_OK) else "100644"
            files[rel] = SimFile(rel, content, mode=mode)
    return SimRepo(id=repo_id, name=folder.name, owner=login, full_name=f"{login}/{folder.name}", files=files)


def _load_truth(path: Path, org: SimOrg) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable JSON file: {e}") from None
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of findings")
    out = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or any(k not in entry for k in _REQUIRED):
            raise InputError(f"{path}: entry {i} needs the keys {', '.join(_REQUIRED)}")
        name = str(entry["repo"]).rsplit("/", 1)[-1]
        repo = org.repo(name)
        if repo is None:
            raise InputError(f"{path}: entry {i} names repo {entry['repo']!r}, which is not a folder of the repos dir")
        out.append(
            {
                "repo": repo.full_name,
                "path": entry["path"],
                "package": entry["package"],
                "version": entry["version"],
                "ecosystem": entry.get("ecosystem", "npm"),
                "kind": entry.get("kind", "locked"),
                "line": entry.get("line"),
            }
        )
    return out
