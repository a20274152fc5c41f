"""Reading a planning tree: PRDs, epics and tasks in markdown with YAML frontmatter.

Layout (directly under DIR or under ``DIR/.claude/``)::

    prds/<name>.md               a PRD
    epics/<epic>/epic.md         an epic (its PRD: ``prd:`` key, else the PRD of the same name,
                                 else the only PRD)
    epics/<epic>/<n>.md          a task of that epic

Frontmatter keys used: ``name``, ``title``, ``status``, ``labels``, ``depends_on``,
``parallel``, ``github`` (and ``milestone``, ``prd``); others are kept in the file
and ignored. ``depends_on`` names tasks of the same epic by number (``[1, 2]``)
or any item by ``epic/n`` or its id. Everything is checked before anything is
sent: bad YAML, a wrong type, a duplicate id, a dangling dependency or a cycle
is one :class:`~engine.errors.InputError` naming the file and line.

GitHub holds at most 100 sub-issues per parent and 8 levels: a parent with
more children gets *continuation* issues (``<title> (continued 2)``), each a
sub-issue of the parent holding up to 100 of the overflow, so every task stays
under its epic; the plan says so in :attr:`Tree.notes`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.errors import InputError

MAX_SUB_ISSUES = 100
MAX_NESTING = 8
DONE_STATES = frozenset({"done", "closed", "completed", "complete"})
_FRONT = re.compile(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*\r?\n?", re.S | re.M)


@dataclass
class Node:
    sid: str                     # stable id: prd:<name>, epic:<epic>, task:<epic>/<n>, part:<parent>#<k>
    kind: str                    # prd | epic | task | part
    path: str                    # the file, relative to the tree's root ("" for continuation issues)
    title: str
    body: str
    status: str = "open"
    labels: list[str] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    parent: str | None = None
    milestone: str | None = None
    parallel: bool | None = None
    github: str | None = None
    lines: dict[str, int] = field(default_factory=dict)   # frontmatter key → line (for error messages)

    @property
    def closed(self) -> bool:
        return self.status.strip().lower() in DONE_STATES

    def content_hash(self) -> str:
        """What decides whether the issue must be updated (``github:`` is written back: not part of it)."""
        fields = {"title": self.title, "body": self.body, "closed": self.closed, "labels": sorted(self.labels),
                  "depends_on": sorted(self.depends_on), "parent": self.parent, "milestone": self.milestone}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Node:
        return cls(**data)


@dataclass
class Tree:
    root: Path
    nodes: dict[str, Node]
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return sorted({label for n in self.nodes.values() for label in n.labels})

    @property
    def milestones(self) -> list[str]:
        return sorted({n.milestone for n in self.nodes.values() if n.milestone})

    def children(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for node in self.nodes.values():
            if node.parent:
                out.setdefault(node.parent, []).append(node.sid)
        return out


def _line_of(text: str, key: str) -> int:
    for i, line in enumerate(text.splitlines(), start=2):       # line 1 is the opening ---
        if re.match(rf"{re.escape(key)}\s*:", line):
            return i
    return 1


def _frontmatter(path: Path, rel: str) -> tuple[dict[str, Any], str, dict[str, int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{rel}: cannot read: {exc}") from None
    match = _FRONT.match(text)
    if match is None:
        return {}, text.strip(), {}
    raw = match.group(1)
    try:
        meta = yaml.safe_load(raw) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{rel}:{line}: bad frontmatter: {problem}") from None
    if not isinstance(meta, dict):
        raise InputError(f"{rel}:2: frontmatter must be a mapping of keys")
    lines = {str(k): _line_of(raw, str(k)) for k in meta}
    return meta, text[match.end():].strip(), lines


def _string(meta: dict, key: str, rel: str, lines: dict[str, int]) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"{rel}:{lines.get(key, 1)}: '{key}' must be a string, not {type(value).__name__}")


def _string_list(meta: dict, key: str, rel: str, lines: dict[str, int]) -> list[str]:
    value = meta.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool)
                                              for v in value):
        raise InputError(f"{rel}:{lines.get(key, 1)}: '{key}' must be a list of names")
    return [str(v) for v in value]


def _node(path: Path, root: Path, kind: str, sid: str) -> tuple[Node, dict[str, Any]]:
    rel = str(path.relative_to(root))
    meta, body, lines = _frontmatter(path, rel)
    parallel = meta.get("parallel")
    if parallel is not None and not isinstance(parallel, bool):
        raise InputError(f"{rel}:{lines.get('parallel', 1)}: 'parallel' must be true or false")
    name = _string(meta, "name", rel, lines)
    heading = next((ln[2:].strip() for ln in body.splitlines() if ln.startswith("# ")), None)
    title = _string(meta, "title", rel, lines) or name or heading or path.stem
    if not title.strip():
        raise InputError(f"{rel}:{lines.get('title', 1)}: the title is empty")
    node = Node(sid=sid, kind=kind, path=rel, title=title.strip()[:256], body=body,
                status=_string(meta, "status", rel, lines) or "open",
                labels=_string_list(meta, "labels", rel, lines),
                depends_on=_string_list(meta, "depends_on", rel, lines),
                milestone=_string(meta, "milestone", rel, lines), parallel=parallel,
                github=_string(meta, "github", rel, lines), lines=lines)
    return node, meta


def _base(root: Path) -> Path:
    if (root / ".claude" / "epics").is_dir() or (root / ".claude" / "prds").is_dir():
        return root / ".claude"
    return root


def load_tree(root: str | Path) -> Tree:
    """Read and check a planning tree; raises InputError (file:line) on anything wrong."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    base = _base(root)
    nodes: dict[str, Node] = {}
    origin: dict[str, str] = {}

    def add(node: Node) -> None:
        if node.sid in nodes:
            raise InputError(f"{node.path}:{node.lines.get('name', 1)}: duplicate id {node.sid!r} "
                             f"(also {origin[node.sid]})")
        nodes[node.sid] = node
        origin[node.sid] = node.path

    prds: list[str] = []
    for path in sorted((base / "prds").glob("*.md")):
        node, meta = _node(path, root, "prd", "")
        node.sid = f"prd:{_string(meta, 'name', node.path, node.lines) or path.stem}"
        node.labels = node.labels or ["prd"]
        add(node)
        prds.append(node.sid)
    epic_prd: dict[str, str | None] = {}
    for epic_dir in sorted(p for p in (base / "epics").glob("*") if p.is_dir()):
        epic_file = epic_dir / "epic.md"
        epic_sid = f"epic:{epic_dir.name}"
        if epic_file.is_file():
            node, meta = _node(epic_file, root, "epic", epic_sid)
            node.labels = node.labels or ["epic"]
            wanted = _string(meta, "prd", node.path, node.lines)
            if wanted:
                wanted = f"prd:{Path(wanted).stem}"
                if wanted not in nodes:
                    raise InputError(f"{node.path}:{node.lines.get('prd', 1)}: no PRD {wanted[4:]!r} in prds/")
            elif f"prd:{epic_dir.name}" in nodes:
                wanted = f"prd:{epic_dir.name}"
            elif len(prds) == 1:
                wanted = prds[0]
            node.parent = wanted
            add(node)
            epic_prd[epic_dir.name] = wanted
        for path in sorted(epic_dir.glob("*.md"), key=lambda p: (len(p.stem), p.stem)):
            if path.name == "epic.md":
                continue
            node, _ = _node(path, root, "task", f"task:{epic_dir.name}/{path.stem}")
            node.parent = epic_sid if epic_file.is_file() else None
            node.labels = node.labels or ["task"]
            add(node)
    if not nodes:
        raise InputError(f"{root}: no prds/*.md or epics/*/ files (also looked under .claude/)")
    _resolve_dependencies(nodes)
    tree = Tree(root=root, nodes=nodes)
    _fit_sub_issue_limits(tree)
    return tree


def _resolve_dependencies(nodes: dict[str, Node]) -> None:
    by_number: dict[tuple[str, str], str] = {}
    for sid in nodes:
        if sid.startswith("task:"):
            epic, _, n = sid[5:].partition("/")
            by_number[(epic, n.lstrip("0") or "0")] = sid
    for node in nodes.values():
        resolved = []
        for ref in node.depends_on:
            target = ref if ref in nodes else None
            if target is None and "/" in ref:
                epic, _, n = ref.partition("/")
                target = by_number.get((epic, n.lstrip("0") or "0"))
            if target is None and node.sid.startswith("task:"):
                target = by_number.get((node.sid[5:].partition("/")[0], ref.lstrip("0") or "0"))
            if target is None:
                raise InputError(f"{node.path}:{node.lines.get('depends_on', 1)}: depends_on {ref!r}: "
                                 "no such item in the tree")
            if target == node.sid:
                raise InputError(f"{node.path}:{node.lines.get('depends_on', 1)}: depends on itself")
            resolved.append(target)
        node.depends_on = list(dict.fromkeys(resolved))
    # a cycle: walk depth-first, colouring nodes
    state: dict[str, int] = {}
    for start in nodes:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            sid, i = stack.pop()
            if i == 0:
                state[sid] = 1
                path.append(sid)
            deps = nodes[sid].depends_on
            if i < len(deps):
                stack.append((sid, i + 1))
                nxt = deps[i]
                if state.get(nxt) == 1:
                    cycle = path[path.index(nxt):] + [nxt]
                    first = nodes[cycle[0]]
                    raise InputError(f"{first.path}:{first.lines.get('depends_on', 1)}: dependency cycle: "
                                     + " → ".join(nodes[s].path or s for s in cycle))
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[sid] = 2
                path.pop()


def _fit_sub_issue_limits(tree: Tree) -> None:
    """Continuation issues for parents with more than 100 children; refuse trees deeper than 8."""
    for parent_sid, kids in sorted(tree.children().items()):
        if len(kids) <= MAX_SUB_ISSUES:
            continue
        parts = 1
        while (MAX_SUB_ISSUES - parts) + parts * MAX_SUB_ISSUES < len(kids):
            parts += 1
        direct = MAX_SUB_ISSUES - parts
        parent = tree.nodes[parent_sid]
        overflow = kids[direct:]
        for k in range(parts):
            chunk = overflow[k * MAX_SUB_ISSUES:(k + 1) * MAX_SUB_ISSUES]
            sid = f"part:{parent_sid}#{k + 2}"
            tree.nodes[sid] = Node(
                sid=sid, kind="part", path="", title=f"{parent.title} (continued {k + 2})",
                body=f"Continuation of {parent.title}: GitHub holds at most {MAX_SUB_ISSUES} sub-issues "
                     "per issue.", labels=list(parent.labels), parent=parent_sid, milestone=parent.milestone)
            for child in chunk:
                tree.nodes[child].parent = sid
        tree.notes.append(
            f"{parent.path}: {len(kids)} sub-issues do not fit under one issue (GitHub allows "
            f"{MAX_SUB_ISSUES}): {direct} go directly under it, {len(overflow)} under {parts} continuation "
            f"issue(s) that are its sub-issues")
    for node in tree.nodes.values():
        depth, cursor = 1, node
        while cursor.parent:
            cursor = tree.nodes[cursor.parent]
            depth += 1
        if depth > MAX_NESTING:
            raise InputError(f"{node.path or node.sid}: {depth} levels of sub-issues; GitHub allows "
                             f"{MAX_NESTING}")
