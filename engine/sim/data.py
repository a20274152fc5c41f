"""The simulator's data model: an org of repositories made of files.

Why this shape: GitHub addresses file content by git blob sha and directories by
git tree sha, and the scanner relies on both (one recursive tree call per repo,
then blobs fetched once per sha however many repos share them). So every
:class:`SimFile` carries its real git blob sha and every directory of a
:class:`SimRepo` gets its real git tree sha (the same bytes git would hash), which
makes identical content share a sha across repos exactly as on GitHub, and lets
a client walk subtrees by sha when a recursive listing is truncated.

The model is plain data: the HTTP app (``engine/sim/app.py``) serves it, the
generator (``engine/sim/generate.py``) and the directory loader
(``engine/sim/repos_dir.py``) build it. Treat repos as immutable once built:
tree shas and indexes are computed lazily and cached.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

#: A recursive tree listing with more entries than this is answered with
#: ``truncated: true`` by the app (GitHub's own limit is 100,000 entries / 7 MB;
#: the simulator uses a smaller one so that tests and the demo meet it).
TRUNCATE_TREE_ENTRIES = 3000

#: git's well-known sha of the empty tree.
EMPTY_TREE_SHA = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

_TREE_MODE = "040000"  # as the REST API shows it; git's object stores "40000"


def git_blob_sha(content: bytes) -> str:
    """The sha git gives ``content`` as a blob (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass(frozen=True)
class SimFile:
    path: str
    content: bytes
    sha: str = ""  # computed from content when left empty
    mode: str = "100644"

    def __post_init__(self) -> None:
        if not self.sha:
            object.__setattr__(self, "sha", git_blob_sha(self.content))

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass
class _Dir:
    """A directory of a repo: its children (git order) and its tree sha."""

    path: str
    children: list[tuple[str, bool]]  # (name, is_dir), sorted as git sorts tree entries
    sha: str = ""


@dataclass
class SimRepo:
    id: int
    name: str
    owner: str
    full_name: str
    default_branch: str = "main"
    private: bool = False
    archived: bool = False
    fork: bool = False
    description: str | None = None
    language: str | None = None
    created_at: str = "2020-01-01T00:00:00Z"
    updated_at: str = "2020-01-01T00:00:00Z"
    pushed_at: str = "2020-01-01T00:00:00Z"
    files: dict[str, SimFile] = field(default_factory=dict)
    _dirs: dict[str, _Dir] | None = field(default=None, init=False, repr=False, compare=False)
    _dir_by_sha: dict[str, str] | None = field(default=None, init=False, repr=False, compare=False)
    _root_entries: list[dict] | None = field(default=None, init=False, repr=False, compare=False)
    _size_kb: int | None = field(default=None, init=False, repr=False, compare=False)

    # -- files -------------------------------------------------------------
    def add(self, path: str, content: bytes) -> SimFile:
        """Add (or replace) a file; only for use while the repo is being built."""
        f = SimFile(path, content)
        self.files[path] = f
        self._dirs = self._dir_by_sha = self._root_entries = None
        self._size_kb = None
        return f

    def file(self, path: str) -> SimFile | None:
        return self.files.get(path.strip("/"))

    @property
    def size_kb(self) -> int:
        """Repository size as the REST API reports it (KiB); summed once (every listing shows it)."""
        if self._size_kb is None:
            self._size_kb = (sum(f.size for f in self.files.values()) + 1023) // 1024
        return self._size_kb

    # -- trees -------------------------------------------------------------
    def _trees(self) -> dict[str, _Dir]:
        if self._dirs is not None:
            return self._dirs
        kids: dict[str, dict[str, bool]] = {"": {}}
        for path in self.files:
            parts = path.split("/")
            parent = ""
            for i, part in enumerate(parts):
                is_dir = i < len(parts) - 1
                kids[parent][part] = is_dir
                if is_dir:
                    child = f"{parent}/{part}" if parent else part
                    kids.setdefault(child, {})
                    parent = child
        dirs: dict[str, _Dir] = {}
        for path, children in kids.items():
            order = sorted(children.items(), key=lambda kv: (kv[0] + "/" if kv[1] else kv[0]).encode())
            dirs[path] = _Dir(path, order)
        # Children before parents: a parent's tree object embeds its children's shas.
        for path in sorted(dirs, key=lambda p: -p.count("/") if p else 1):
            d = dirs[path]
            body = bytearray()
            for name, is_dir in d.children:
                child = f"{path}/{name}" if path else name
                if is_dir:
                    mode, sha = "40000", dirs[child].sha
                else:
                    f = self.files[child]
                    mode, sha = f.mode, f.sha
                body += f"{mode} {name}".encode() + b"\0" + bytes.fromhex(sha)
            d.sha = hashlib.sha1(b"tree %d\0" % len(body) + bytes(body)).hexdigest()
        self._dirs = dirs
        self._dir_by_sha = {}
        for path in sorted(dirs, key=lambda p: (p.count("/"), p)):  # shallowest wins on identical subtrees
            self._dir_by_sha.setdefault(dirs[path].sha, path)
        return dirs

    def tree_sha(self, dir_path: str = "") -> str:
        """The git tree sha of a directory ("" is the root). KeyError if absent."""
        if not self.files and dir_path == "":
            return EMPTY_TREE_SHA
        return self._trees()[dir_path.strip("/")].sha

    def tree_path(self, sha: str) -> str | None:
        """The directory whose tree has this sha ("" for the root), or None."""
        if not self.files:
            return "" if sha == EMPTY_TREE_SHA else None
        self._trees()
        assert self._dir_by_sha is not None
        return self._dir_by_sha.get(sha)

    @property
    def commit_sha(self) -> str:
        """A deterministic sha for the head commit of the default branch."""
        body = (
            f"tree {self.tree_sha()}\nauthor sim <sim@example.invalid> 0 +0000\n"
            f"committer sim <sim@example.invalid> 0 +0000\n\n{self.full_name}@{self.default_branch}\n"
        ).encode()
        return hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest()

    def resolve_tree(self, ref: str) -> str | None:
        """The directory a trees-API ``ref`` names: the default branch (bare or
        ``refs/heads/...``), ``HEAD``, the head commit sha, or any tree sha."""
        if ref in (self.default_branch, f"refs/heads/{self.default_branch}", f"heads/{self.default_branch}", "HEAD"):
            return ""
        if ref == self.commit_sha:
            return ""
        return self.tree_path(ref)

    def tree_entries(self, dir_path: str = "", recursive: bool = True) -> list[dict]:
        """Git tree entries under ``dir_path``, paths relative to it.

        Recursive listings hold a ``tree`` entry for every directory, in the
        order ``git ls-tree -r -t`` prints them (each directory right before its
        contents, siblings in git's byte order with directories compared as
        ``name/``). Blob entries carry ``size``. Don't mutate the returned dicts.
        """
        dir_path = dir_path.strip("/")
        if not self.files:
            return []
        if dir_path == "" and recursive and self._root_entries is not None:
            return list(self._root_entries)
        dirs = self._trees()
        out: list[dict] = []

        def walk(path: str, rel: str) -> None:
            for name, is_dir in dirs[path].children:
                full = f"{path}/{name}" if path else name
                shown = f"{rel}/{name}" if rel else name
                if is_dir:
                    out.append({"path": shown, "mode": _TREE_MODE, "type": "tree", "sha": dirs[full].sha})
                    if recursive:
                        walk(full, shown)
                else:
                    f = self.files[full]
                    out.append({"path": shown, "mode": f.mode, "type": "blob", "sha": f.sha, "size": f.size})

        walk(dir_path, "")
        if dir_path == "" and recursive:
            self._root_entries = out
            return list(out)
        return out


@dataclass
class SimOrg:
    login: str
    id: int
    repos: list[SimRepo] = field(default_factory=list)
    #: Planted findings a correct scanner reports, see ``engine.sim.generate``.
    truth: list[dict] = field(default_factory=list)
    #: Files deliberately broken: {"repo": full_name, "path", "reason"}.
    malformed: list[dict] = field(default_factory=list)
    _by_name: dict[str, SimRepo] | None = field(default=None, init=False, repr=False, compare=False)
    _blobs: dict[str, SimFile] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.repos.sort(key=lambda r: (r.name.lower(), r.name))  # stable pagination

    def repo(self, name: str) -> SimRepo | None:
        """Look a repo up by name, case-insensitively as GitHub does."""
        if self._by_name is None or len(self._by_name) != len(self.repos):
            self._by_name = {r.name.lower(): r for r in self.repos}
        return self._by_name.get(name.lower())

    def blob(self, sha: str) -> SimFile | None:
        """Any file with this blob sha, in any repo of the org."""
        if self._blobs is None:
            self._blobs = {}
            for r in self.repos:
                for f in r.files.values():
                    self._blobs.setdefault(f.sha, f)
        return self._blobs.get(sha)

    def truth_for(self, *, include_archived: bool = True, include_forks: bool = True) -> list[dict]:
        """The truth restricted to the repos a scan with these filters visits."""
        keep = {
            r.full_name
            for r in self.repos
            if (include_archived or not r.archived) and (include_forks or not r.fork)
        }
        return [t for t in self.truth if t["repo"] in keep]
