"""Writers of the npm-ecosystem files: package.json and every lockfile flavour.

One resolved dependency set (:class:`NpmProject` with its
:class:`NpmPackage` list) is rendered into whichever format a repo uses, so a
planted package is the same fact in every format, and each writer records the
line of every package record (see ``Rendered.records``) following the
convention documented in ``engine.sim.generate``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from engine.sim.lockfiles import JsonWriter, Rendered, hex_digest, npm_tarball, q, sri_sha512

_DEP_SECTIONS = (
    ("dependencies", "dependencies"),
    ("devDependencies", "dev_dependencies"),
    ("optionalDependencies", "optional_dependencies"),
    ("peerDependencies", "peer_dependencies"),
)


@dataclass
class NpmPackage:
    """One installed package of a dependency tree."""

    name: str  # registry name
    version: str
    parents: tuple[str, ...] = ()  # installed folders above it: node_modules/<p>/node_modules/<this>
    alias: str | None = None  # installed under another name (``npm:name@version`` alias)
    ws: str = ""  # workspace folder whose own node_modules holds it ("packages/web")
    dev: bool = False
    optional: bool = False
    peer_suffix: str = ""  # pnpm peer resolution, e.g. "react@18.2.0"
    requires: dict[str, str] = field(default_factory=dict)  # dependency -> range
    specs: tuple[str, ...] = ()  # ranges that resolved to it (yarn/pnpm keys)

    @property
    def folder(self) -> str:
        return self.alias or self.name

    def lock_key(self) -> str:
        """Its key in package-lock v2/v3 ``packages``."""
        chain = "/node_modules/".join((*self.parents, self.folder))
        return (f"{self.ws}/" if self.ws else "") + "node_modules/" + chain

    def ranges(self) -> tuple[str, ...]:
        return self.specs or (f"^{self.version}",)


@dataclass
class NpmProject:
    """A package.json and what its lockfile resolved."""

    name: str
    version: str = "1.0.0"
    path: str = ""  # folder inside the repo ("" = root, "packages/web" for a workspace)
    dependencies: dict[str, str] = field(default_factory=dict)
    dev_dependencies: dict[str, str] = field(default_factory=dict)
    optional_dependencies: dict[str, str] = field(default_factory=dict)
    peer_dependencies: dict[str, str] = field(default_factory=dict)
    packages: list[NpmPackage] = field(default_factory=list)
    workspaces: list[NpmProject] = field(default_factory=list)
    description: str = ""
    scripts: dict[str, str] = field(default_factory=dict)
    private: bool = True

    def declared(self) -> list[tuple[str, str, str]]:
        """(section, name, range) for every dependency of package.json."""
        return [(s, n, r) for s, attr in _DEP_SECTIONS for n, r in getattr(self, attr).items()]


# -- package.json -------------------------------------------------------------
def package_json(p: NpmProject, indent: int = 2) -> Rendered:
    """``records`` maps (name, range) to the line of that dependency."""
    w = JsonWriter(indent)
    w.obj()
    w.val("name", p.name)
    w.val("version", p.version)
    if p.description:
        w.val("description", p.description)
    if p.private:
        w.val("private", True)
    if p.workspaces:
        w.arr("workspaces")
        for pattern in sorted({ws.path.rsplit("/", 1)[0] + "/*" for ws in p.workspaces}):
            w.val(None, pattern)
        w.end()
    if p.scripts:
        w.mapping("scripts", p.scripts)
    out = Rendered("")
    for section, attr in _DEP_SECTIONS:
        deps = getattr(p, attr)
        if not deps:
            continue
        w.obj(section)
        for name, rng in deps.items():
            out.mark(name, rng, w.val(name, rng))
        w.end()
    w.end()
    out.text = w.text()
    return out


# -- package-lock.json / npm-shrinkwrap.json ----------------------------------
def _root_entry(w: JsonWriter, p: NpmProject, key: str) -> None:
    w.obj(key)
    w.val("name", p.name)
    w.val("version", p.version)
    if p.workspaces:
        w.arr("workspaces")
        for pattern in sorted({ws.path.rsplit("/", 1)[0] + "/*" for ws in p.workspaces}):
            w.val(None, pattern)
        w.end()
    for section, attr in _DEP_SECTIONS:
        if getattr(p, attr):
            w.mapping(section, getattr(p, attr))
    w.end()


def _lock_entry_body(w: JsonWriter, pkg: NpmPackage, v1: bool) -> None:
    if v1:
        w.val("version", f"npm:{pkg.name}@{pkg.version}" if pkg.alias else pkg.version)
    else:
        if pkg.alias:
            w.val("name", pkg.name)
        w.val("version", pkg.version)
    w.val("resolved", npm_tarball(pkg.name, pkg.version))
    w.val("integrity", sri_sha512(pkg.name, pkg.version))
    if pkg.dev:
        w.val("dev", True)
    if pkg.optional:
        w.val("optional", True)
    if pkg.requires:
        w.mapping("requires" if v1 else "dependencies", pkg.requires)


def package_lock(p: NpmProject, lockfile_version: int) -> Rendered:
    """package-lock.json (and npm-shrinkwrap.json, the same format) v1, v2 or v3."""
    w = JsonWriter(2)
    out = Rendered("")
    w.obj()
    w.val("name", p.name)
    w.val("version", p.version)
    w.val("lockfileVersion", lockfile_version)
    w.val("requires", True)
    if lockfile_version >= 2:
        w.obj("packages")
        _root_entry(w, p, "")
        entries: list[tuple[str, NpmPackage | NpmProject | str]] = [(pkg.lock_key(), pkg) for pkg in p.packages]
        for ws in p.workspaces:
            entries.append((ws.path, ws))
            entries.append(("node_modules/" + ws.name, ws.path))
        entries.sort(key=lambda e: e[0])
        for key, item in entries:
            if isinstance(item, NpmPackage):
                out.mark(item.name, item.version, w.obj(key))
                _lock_entry_body(w, item, v1=False)
                w.end()
            elif isinstance(item, NpmProject):
                _root_entry(w, item, key)
            else:  # a workspace link
                w.obj(key)
                w.val("resolved", item)
                w.val("link", True)
                w.end()
        w.end()
    if lockfile_version <= 2:
        _legacy_tree(w, out, p)
    w.end()
    out.text = w.text()
    return out


def _legacy_tree(w: JsonWriter, out: Rendered, p: NpmProject) -> None:
    """lockfile v1's nested ``dependencies`` tree (also kept in v2 for old npm)."""
    children: dict[tuple[str, ...], list[NpmPackage]] = {}
    for pkg in p.packages:
        if pkg.ws:  # v1 has no workspaces; v2 lists them only in ``packages``
            continue
        children.setdefault(pkg.parents, []).append(pkg)

    def emit(parents: tuple[str, ...]) -> None:
        for pkg in sorted(children.get(parents, ()), key=lambda k: k.folder):
            out.mark(pkg.name, pkg.version, w.obj(pkg.folder))
            _lock_entry_body(w, pkg, v1=True)
            below = (*parents, pkg.folder)
            if below in children:
                w.obj("dependencies")
                emit(below)
                w.end()
            w.end()

    w.obj("dependencies")
    emit(())
    w.end()


# -- yarn.lock -----------------------------------------------------------------
def _groups(p: NpmProject) -> dict[tuple[str, str, str | None], list[str]]:
    """(name, version, alias) -> the ranges resolving to it, yarn/pnpm being flat."""
    groups: dict[tuple[str, str, str | None], list[str]] = {}
    for pkg in p.packages:
        specs = groups.setdefault((pkg.name, pkg.version, pkg.alias), [])
        for s in pkg.ranges():
            if s not in specs:
                specs.append(s)
    return groups


def _requires_of(p: NpmProject) -> dict[tuple[str, str, str | None], dict[str, str]]:
    out: dict[tuple[str, str, str | None], dict[str, str]] = {}
    for pkg in p.packages:
        out.setdefault((pkg.name, pkg.version, pkg.alias), pkg.requires)
    return out


def yarn_v1(p: NpmProject) -> Rendered:
    lines = ["# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.", "# yarn lockfile v1", ""]
    out = Rendered("")
    requires = _requires_of(p)
    entries = []
    for (name, version, alias), specs in _groups(p).items():
        descs = [f"{alias}@npm:{name}@{s}" if alias else f"{name}@{s}" for s in sorted(specs)]
        header = ", ".join(q(d) if d.startswith("@") or " " in d or ":" in d else d for d in descs) + ":"
        entries.append((descs[0].lower(), header, (name, version, alias)))
    for _, header, ident in sorted(entries):
        name, version, _alias = ident
        lines.append("")
        lines.append(header)
        out.mark(name, version, len(lines))
        sha1 = hex_digest("sha1", f"{name}@{version}")
        lines.append(f'  version "{version}"')
        lines.append(f'  resolved "{npm_tarball(name, version, "https://registry.yarnpkg.com")}#{sha1}"')
        lines.append(f"  integrity {sri_sha512(name, version)}")
        if requires[ident]:
            lines.append("  dependencies:")
            for dep, rng in requires[ident].items():
                lines.append(f"    {q(dep) if dep.startswith('@') else dep} {q(rng)}")
    out.text = "\n".join(lines) + "\n"
    return out


def _berry_range(s: str) -> str:
    return s if s.startswith(("npm:", "workspace:", "patch:")) else f"npm:{s}"


def yarn_berry(p: NpmProject, yarn4: bool = True) -> Rendered:
    lines = [
        "# This file is generated by running \"yarn install\" inside your project.",
        "# Manual changes might be lost - proceed with caution!",
        "",
        "__metadata:",
        f"  version: {8 if yarn4 else 6}",
        f"  cacheKey: {'10c0' if yarn4 else 8}",
    ]
    out = Rendered("")
    blocks: list[tuple[str, list[str], tuple[str, str] | None]] = []
    reqs = _requires_of(p)
    for (name, version, alias), specs in _groups(p).items():
        label = alias or name
        descs = [f"{label}@npm:{name}@{s}" if alias else f"{name}@npm:{s}" for s in sorted(specs)]
        body = [
            f"  version: {version}",
            f'  resolution: "{name}@npm:{version}"',
        ]
        requires = reqs.get((name, version, alias)) or {}
        if requires:
            body.append("  dependencies:")
            for dep, rng in requires.items():
                rng_text = _berry_range(rng) if yarn4 else rng
                body.append(f"    {_yaml_key(dep)}: {_yaml_scalar(rng_text)}")
        checksum = hex_digest("sha512", f"{name}@{version}")
        body.append(f"  checksum: {'10c0/' if yarn4 else ''}{checksum}")
        body.append("  languageName: node")
        body.append("  linkType: hard")
        blocks.append((q(", ".join(descs)) + ":", body, (name, version)))
    for proj in (p, *p.workspaces):
        where = proj.path or "."
        body = ["  version: 0.0.0-use.local", f'  resolution: "{proj.name}@workspace:{where}"']
        deps = {**proj.dependencies, **proj.optional_dependencies}
        for title, section in (("dependencies", deps), ("devDependencies", proj.dev_dependencies)):
            if section:
                body.append(f"  {title}:")
                for dep, rng in sorted(section.items()):
                    body.append(f"    {_yaml_key(dep)}: {_yaml_scalar(_berry_range(rng) if yarn4 else rng)}")
        body += ["  languageName: unknown", "  linkType: soft"]
        blocks.append((q(f"{proj.name}@workspace:{where}") + ":", body, None))
    for header, body, rec in sorted(blocks, key=lambda b: b[0].lower()):
        lines.append("")
        lines.append(header)
        if rec:
            out.mark(rec[0], rec[1], len(lines))
        lines.extend(body)
    out.text = "\n".join(lines) + "\n"
    return out


# -- pnpm-lock.yaml ----------------------------------------------------------------
_YAML_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "~", ""}


def _yaml_scalar(s: str) -> str:
    if (
        s.lower() in _YAML_RESERVED
        or s[0] in "-?:,[]{}#&*!|>'\"%@`<="
        or ": " in s
        or " #" in s
        or re.fullmatch(r"[0-9.]+", s) and s.count(".") < 2
    ):
        return "'" + s.replace("'", "''") + "'"
    return s


def _yaml_key(s: str) -> str:
    return _yaml_scalar(s)


def _pnpm_ref(pkg: NpmPackage) -> str:
    return pkg.version + (f"({pkg.peer_suffix})" if pkg.peer_suffix else "")


def _pnpm_key(pkg: NpmPackage, major: int) -> str:
    if major == 5:
        return f"/{pkg.name}/{pkg.version}" + (f"_{pkg.peer_suffix}" if pkg.peer_suffix else "")
    if major == 6:
        return f"/{pkg.name}@{_pnpm_ref(pkg)}"
    return f"{pkg.name}@{pkg.version}"


def _pnpm_sections(proj: NpmProject, direct: dict[str, NpmPackage], major: int, pad: str) -> list[list[str]]:
    """The dependency sections of one importer (a project of the lockfile)."""
    sections = [
        ("dependencies", proj.dependencies),
        ("optionalDependencies", proj.optional_dependencies),
        ("devDependencies", proj.dev_dependencies),
    ]
    out: list[list[str]] = []
    if major == 5:
        specifiers = {n: r for _, sec in sections for n, r in sec.items()}
        if specifiers:
            out.append([f"{pad}specifiers:"] + [f"{pad}  {_yaml_key(n)}: {_yaml_scalar(r)}" for n, r in sorted(specifiers.items())])
    for title, sec in sections:
        if not sec:
            continue
        block = [f"{pad}{title}:"]
        for n, rng in sorted(sec.items()):
            pkg = direct[n]
            if major == 5:
                ref = pkg.version + (f"_{pkg.peer_suffix}" if pkg.peer_suffix else "")
                block.append(f"{pad}  {_yaml_key(n)}: {_yaml_scalar(ref)}")
            else:
                block.append(f"{pad}  {_yaml_key(n)}:")
                block.append(f"{pad}    specifier: {_yaml_scalar(rng)}")
                block.append(f"{pad}    version: {_yaml_scalar(_pnpm_ref(pkg))}")
        out.append(block)
    return out


def pnpm_lock(p: NpmProject, major: int) -> Rendered:
    """pnpm-lock.yaml v5 (``/name/1.2.3``), v6 (``/name@1.2.3``), v9 (packages + snapshots)."""
    version = {5: "5.4", 6: "'6.0'", 9: "'9.0'"}[major]
    lines = [f"lockfileVersion: {version}", ""]
    if major >= 6:
        lines += ["settings:", "  autoInstallPeers: true", "  excludeLinksFromLockfile: false", ""]
    out = Rendered("")
    _resolved = _resolver(p)
    top = [pkg for pkg in p.packages if not pkg.parents and not pkg.ws and not pkg.alias]
    projects = [p, *p.workspaces]

    hoisted = {pkg.name: pkg for pkg in reversed(top)}
    local = {(pkg.ws, pkg.name): pkg for pkg in reversed(p.packages) if pkg.ws and not pkg.parents}

    def direct_of(proj: NpmProject) -> dict[str, NpmPackage]:
        """The installed copy each dependency of ``proj`` resolved to (its own
        non-hoisted copy in a workspace wins over the hoisted one)."""
        found = {}
        for _, name, _ in proj.declared():
            pkg = local.get((proj.path, name)) if proj.path else None
            pkg = pkg or hoisted.get(name)
            if pkg is not None:
                found[name] = pkg
        return found

    if major == 9 or p.workspaces:
        lines += ["importers:", ""]
        for proj in projects:
            sections = _pnpm_sections(proj, direct_of(proj), major, "    ")
            lines.append(f"  {proj.path or '.'}:" + ("" if sections else " {}"))
            for block in sections:
                lines.extend(block)
            lines.append("")
    else:
        for block in _pnpm_sections(p, direct_of(p), major, ""):
            lines.extend(block)
            lines.append("")
    lines += ["packages:", ""]
    seen: dict[str, NpmPackage] = {}
    for pkg in p.packages:
        seen.setdefault(_pnpm_key(pkg, major), pkg)
    for key in sorted(seen, key=lambda k: k.lower()):
        pkg = seen[key]
        lines.append(f"  {_yaml_key(key)}:")
        out.mark(pkg.name, pkg.version, len(lines))
        lines.append(f"    resolution: {{integrity: {sri_sha512(pkg.name, pkg.version)}}}")
        if pkg.name.startswith("@types/") or pkg.name.startswith("@babel/"):
            lines.append("    engines: {node: '>=6.9.0'}")
        if major < 9 and pkg.requires:
            lines.append("    dependencies:")
            lines.extend(f"      {_yaml_key(d)}: {_yaml_scalar(_resolved(d, r))}" for d, r in pkg.requires.items())
        if major < 9:
            lines.append(f"    dev: {'true' if pkg.dev else 'false'}")
        lines.append("")
    if major == 9:
        lines += ["snapshots:", ""]
        snaps: dict[str, NpmPackage] = {}
        for pkg in p.packages:
            snaps.setdefault(f"{pkg.name}@{_pnpm_ref(pkg)}", pkg)
        for key in sorted(snaps, key=lambda k: k.lower()):
            pkg = snaps[key]
            if pkg.requires:
                lines.append(f"  {_yaml_key(key)}:")
                lines.append("    dependencies:")
                lines.extend(f"      {_yaml_key(d)}: {_yaml_scalar(_resolved(d, r))}" for d, r in pkg.requires.items())
            else:
                lines.append(f"  {_yaml_key(key)}: {{}}")
            lines.append("")
    while lines and lines[-1] == "":
        lines.pop()
    out.text = "\n".join(lines) + "\n"
    return out


def _resolver(p: NpmProject):
    """Map (dependency, range) to the version it resolved to: the copy the range
    names exactly, else the hoisted copy, else the first one installed."""
    copies: dict[str, list[NpmPackage]] = {}
    for pkg in p.packages:
        copies.setdefault(pkg.name, []).append(pkg)

    def resolved(dep: str, rng: str) -> str:
        found = copies.get(dep, ())
        for pkg in found:
            if pkg.version == rng:
                return pkg.version
        for pkg in found:
            if not pkg.parents and not pkg.ws:
                return pkg.version
        return found[0].version if found else rng.lstrip("^~=")

    return resolved


# -- bun.lock ------------------------------------------------------------------
def bun_lock(p: NpmProject) -> Rendered:
    """bun's text lockfile (JSON with trailing commas, one package per line)."""
    w = JsonWriter(2, trailing_commas=True)
    out = Rendered("")
    w.obj()
    w.val("lockfileVersion", 1)
    w.obj("workspaces")
    for proj in (p, *p.workspaces):
        w.obj(proj.path)
        w.val("name", proj.name)
        for section, attr in _DEP_SECTIONS:
            if getattr(proj, attr):
                w.mapping(section, getattr(proj, attr))
        w.end()
    w.end()
    w.obj("packages")
    entries: list[tuple[str, str, NpmPackage | None]] = []
    for pkg in p.packages:
        prefix = ""
        if pkg.ws:
            prefix = next((ws.name for ws in p.workspaces if ws.path == pkg.ws), pkg.ws) + "/"
        key = prefix + "/".join((*pkg.parents, pkg.folder))
        parts = []
        if pkg.requires:
            deps = ", ".join(f"{q(d)}: {q(r)}" for d, r in pkg.requires.items())
            parts.append(f'"dependencies": {{ {deps} }}')
        if pkg.optional:
            parts.append('"optional": true')
        meta = "{ " + ", ".join(parts) + " }" if parts else "{}"
        value = f'[{q(pkg.name + "@" + pkg.version)}, "", {meta}, {q(sri_sha512(pkg.name, pkg.version))}]'
        entries.append((key, value, pkg))
    for ws in p.workspaces:
        entries.append((ws.name, f"[{q(ws.name + '@workspace:' + ws.path)}]", None))
    first = True
    for key, value, locked in sorted(entries, key=lambda e: e[0]):
        if not first:
            w.lines.append("")  # bun separates package lines with a blank line
        first = False
        line = w.raw(key, value)
        if locked is not None:
            out.mark(locked.name, locked.version, line)
    w.end()
    w.end()
    out.text = w.text()
    return out


def render(fmt: str, p: NpmProject) -> Rendered:
    """Render ``p``'s lockfile in the format keyed ``fmt`` (see ``lockfiles.FORMATS``)."""
    if fmt in ("npm-lock-v1", "npm-lock-v2", "npm-lock-v3"):
        return package_lock(p, int(fmt[-1]))
    if fmt == "npm-shrinkwrap":
        return package_lock(p, 3 if p.workspaces else 2)
    if fmt == "yarn-v1":
        return yarn_v1(p)
    if fmt == "yarn-berry":
        return yarn_berry(p, yarn4=len(p.packages) % 2 == 0)
    if fmt.startswith("pnpm-v"):
        return pnpm_lock(p, int(fmt[len("pnpm-v") :]))
    if fmt == "bun":
        return bun_lock(p)
    raise ValueError(f"not an npm lockfile format: {fmt}")
