"""Build npm dependency trees with compromised (and decoy) IOC packages planted in them.

A :class:`Plant` says how one IOC package enters a project: locked at a version
(compromised, or safe for a decoy), declared in package.json with a range, as a
direct or transitive dependency, nested under another package's node_modules,
installed under an alias, or non-hoisted in a workspace. Ranges are built so
that the compromised version is inside by construction (``^``/``~``/x-ranges
around it) and decoy ranges so that every compromised version is outside,
``^0.x`` traps included; the generator's truth is then derived from the built
tree with :func:`engine.sim.lockfile_semver.satisfies`, never assumed.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.sim.lockfile_npm import NpmPackage, NpmProject
from engine.sim.lockfile_semver import Version, parse_version, satisfies

SECTIONS = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies")
_SECTION_ATTR = dict(
    zip(SECTIONS, ("dependencies", "dev_dependencies", "optional_dependencies", "peer_dependencies"), strict=True)
)
_PEER_USERS = ("react-dom", "react-redux", "react-router-dom", "@testing-library/react", "styled-jsx", "@emotion/react")


def _fmt(v: Version) -> str:
    return f"{v[0]}.{v[1]}.{v[2]}"


@dataclass
class Plant:
    """How one IOC package enters a project."""

    name: str
    lock: str | None  # version installed (None: not installed)
    declared: str | None  # package.json range (None: not declared)
    section: str = "dependencies"
    nested: bool = False  # under another package's node_modules
    alias: str | None = None  # installed under this alias
    ws: str = ""  # workspace folder that declares it, or holds it non-hoisted
    ws_local: bool = False  # installed in the workspace's own node_modules
    shadow: str | None = None  # a safe hoisted copy beside a nested one
    peer: bool = False  # pnpm peer-resolved variant (``pkg@1.2.3(react@18.2.0)``)


def admitting_ranges(v: str) -> list[str]:
    """Ranges that contain ``v`` (node-semver semantics, ``^0.x`` respected)."""
    ma, mi, pa = parse_version(v)
    out = [v, f"^{v}", f"~{v}", f"{ma}.{mi}.x", f">={ma}.{mi}.0 <{ma + 1}.0.0", f"^{ma + 1}.0.0 || ^{v}"]
    if ma or mi:
        out += [f"^{ma}.{mi}.0", f"~{ma}.{mi}.0"]
    if ma:
        out.append(f"^{ma}.0.0")
    return [r for r in out if satisfies(v, r)]


def safe_versions(bad: tuple[str, ...]) -> list[str]:
    """Versions near the compromised ones that are not compromised."""
    vs = sorted(parse_version(b) for b in bad)
    lo, hi = vs[0], vs[-1]
    cands = [(hi[0], hi[1], hi[2] + 1), (hi[0], hi[1] + 1, 0), (hi[0] + 1, 0, 0)]
    if lo[2] > 0:
        cands.append((lo[0], lo[1], lo[2] - 1))
    if lo[1] > 0:
        cands.append((lo[0], lo[1] - 1, 0))
    return [_fmt(c) for c in cands if _fmt(c) not in bad]


def excluding_ranges(safe: str, bad: tuple[str, ...]) -> list[str]:
    """Ranges that contain ``safe`` and none of ``bad``."""
    ma, mi, pa = parse_version(safe)
    lo = min(parse_version(b) for b in bad)
    forms = [safe, f"^{safe}", f"~{safe}", f"{ma}.{mi}.x", f"<{_fmt(lo)}", f">={safe} <{_fmt(lo)}"]
    if ma == 0 and mi > 0:
        forms.append(f"^0.{mi}.0")  # the ^0.x trap: below 0.(mi+1).0 only
    return [r for r in forms if satisfies(safe, r) and not any(satisfies(b, r) for b in bad)]


def _section(rng: random.Random) -> str:
    return rng.choices(SECTIONS, weights=(60, 25, 8, 7))[0]


def compromised_plant(rng: random.Random, name: str, bad: tuple[str, ...], caps: set[str]) -> Plant:
    """A plant that a correct scanner must report. ``caps`` says what the file
    format can express: lockfile, nested, alias, ws-local, peer."""
    v = rng.choice(bad)
    if "lockfile" not in caps:
        return Plant(name, None, rng.choice(admitting_ranges(v)), _section(rng))
    kinds = ["direct"] * 4 + ["transitive"] * 3 + ["declared-safe-lock"] * 2
    kinds += ["nested"] * 2 if "nested" in caps else []
    kinds += ["alias"] if "alias" in caps else []
    kind = rng.choice(kinds)
    plant = Plant(name, v, None, peer="peer" in caps and rng.random() < 0.5)
    if kind == "direct":
        plant.declared, plant.section = rng.choice(admitting_ranges(v)), _section(rng)
    elif kind == "declared-safe-lock":
        pairs = [(r, s) for r in admitting_ranges(v) for s in safe_versions(bad) if satisfies(s, r)]
        if pairs:
            plant.declared, plant.lock = rng.choice(pairs)
        else:
            plant.declared = rng.choice(admitting_ranges(v))
        plant.section = _section(rng)
    elif kind == "nested":
        plant.nested = True
        safe = safe_versions(bad)
        if safe and rng.random() < 0.5:
            plant.shadow = rng.choice(safe)
    elif kind == "alias":
        plant.alias = name.rsplit("/", 1)[-1] + rng.choice(("-compat", "-legacy", "-v" + v.split(".")[0]))
    return plant


def decoy_plant(rng: random.Random, name: str, bad: tuple[str, ...], caps: set[str]) -> Plant | None:
    """An IOC package at a safe version / with a range excluding every
    compromised version: a scanner matching names only, or misreading ranges, reports it."""
    safe = safe_versions(bad)
    if not safe:
        return None
    s = rng.choice(safe)
    ranges = excluding_ranges(s, bad)
    declared = rng.choice(ranges) if ranges and rng.random() < 0.7 else None
    if "lockfile" not in caps:
        return Plant(name, None, declared, _section(rng)) if declared else None
    nested = declared is None and "nested" in caps and rng.random() < 0.4
    return Plant(name, s, declared, _section(rng), nested=nested)


# -- building a resolved tree ---------------------------------------------------
class TreeBuilder:
    """Assembles one :class:`NpmProject` (optionally with workspaces) from a pool."""

    def __init__(self, rng: random.Random, pool: Mapping[str, tuple[str, ...]], dev_names: frozenset[str]) -> None:
        self.rng = rng
        self.pool = pool
        self.names = list(pool)
        self.dev_names = [n for n in self.names if n in dev_names]
        self.runtime_names = [n for n in self.names if n not in dev_names]

    def _range(self, v: str) -> str:
        prefix = self.rng.choices(("^", "~", "", ">="), weights=(70, 12, 12, 6))[0]
        return prefix + v

    def build(
        self,
        name: str,
        *,
        n_deps: int,
        n_dev: int,
        n_transitive: int,
        plants: Sequence[Plant] = (),
        workspaces: Sequence[tuple[str, str]] = (),
        ws_local: int = 0,
        ws_deps: int = 6,
    ) -> NpmProject:
        rng = self.rng
        root = NpmProject(name=name, version=f"{rng.randint(0, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}")
        wss = [NpmProject(name=n, version=f"0.{rng.randint(1, 9)}.{rng.randint(0, 9)}", path=p) for p, n in workspaces]
        root.workspaces = wss
        version: dict[str, str] = {}
        top: dict[str, NpmPackage] = {}

        def hoist(dep: str, dev: bool) -> NpmPackage:
            if dep not in top:
                versions = self.pool[dep]
                version[dep] = versions[0] if rng.random() < 0.75 else rng.choice(versions)
                top[dep] = NpmPackage(dep, version[dep], dev=dev)
            elif not dev:
                top[dep].dev = False
            return top[dep]

        def declare(proj: NpmProject, names: list[str], section: str) -> None:
            deps = getattr(proj, _SECTION_ATTR[section])
            for dep in names:
                pkg = hoist(dep, dev=section == "devDependencies")
                deps[dep] = self._range(pkg.version)

        for proj, k in ((root, n_deps), *((w, ws_deps) for w in wss)):
            declare(proj, rng.sample(self.runtime_names, min(k, len(self.runtime_names))), "dependencies")
        for proj in (root, *wss):
            declare(proj, rng.sample(self.dev_names, min(n_dev, len(self.dev_names))), "devDependencies")
        rest = [n for n in self.names if n not in top]
        for dep in rng.sample(rest, min(n_transitive, len(rest))):
            hoist(dep, dev=rng.random() < 0.3)
        packages = list(top.values())
        # Older copies nested under a dependant, as npm does on version conflicts.
        for pkg in list(packages):
            others = [v for v in self.pool[pkg.name] if v != pkg.version]
            if others and rng.random() < 0.2:
                parent = rng.choice([p for p in packages if p.name != pkg.name and not p.parents])
                nested = NpmPackage(pkg.name, rng.choice(others), parents=(parent.folder,), dev=parent.dev)
                nested.specs = (nested.version,)
                parent.requires[pkg.name] = nested.version
                packages.append(nested)
        # Workspace-local (non-hoisted) copies: what makes monorepo lockfiles large.
        for ws in wss:
            for dep in rng.sample(self.names, min(ws_local, len(self.names))):
                others = [v for v in self.pool[dep] if v != version.get(dep)]
                if not others or dep in ws.dependencies:
                    continue
                v = rng.choice(others)
                local = NpmPackage(dep, v, ws=ws.path, specs=(f"^{v}",))
                ws.dependencies[dep] = f"^{v}"
                packages.append(local)
                for sub in rng.sample(self.names, 2):
                    if sub != dep and sub in top:
                        subv = rng.choice(self.pool[sub])
                        packages.append(NpmPackage(sub, subv, parents=(dep,), ws=ws.path, specs=(subv,)))
                        local.requires[sub] = subv
        hoisted = [p for p in packages if not p.parents and not p.ws]
        for pkg in hoisted:
            for required in rng.sample(hoisted, min(len(hoisted), rng.randint(0, 3))):
                if required.name != pkg.name and required.name not in pkg.requires:
                    pkg.requires[required.name] = f"^{required.version}"
        if "react" in top:
            for pkg in hoisted:
                if pkg.name in _PEER_USERS:
                    pkg.peer_suffix = f"react@{top['react'].version}"
        for plant in plants:
            self._plant(root, packages, hoisted, plant)
        self._specs(root, packages)
        root.packages = packages
        return root

    def _plant(self, root: NpmProject, packages: list[NpmPackage], hoisted: list[NpmPackage], plant: Plant) -> None:
        rng = self.rng
        proj = next((w for w in root.workspaces if w.path == plant.ws), root)
        if plant.declared is not None:
            getattr(proj, _SECTION_ATTR[plant.section])[plant.name] = plant.declared
        if plant.lock is None:
            return
        dev = plant.section == "devDependencies" and plant.declared is not None
        parent = rng.choice([p for p in hoisted if p.name not in _PEER_USERS] or hoisted)
        if plant.nested:
            pkg = NpmPackage(plant.name, plant.lock, parents=(parent.folder,), dev=parent.dev, specs=(plant.lock,))
            parent.requires[plant.name] = plant.lock
            if plant.shadow:
                packages.append(NpmPackage(plant.name, plant.shadow, specs=(f"^{plant.shadow}",)))
        elif plant.alias:
            pkg = NpmPackage(plant.name, plant.lock, alias=plant.alias, dev=parent.dev)
            parent.requires[plant.alias] = f"npm:{plant.name}@^{plant.lock}"
        elif plant.ws_local and plant.ws:
            pkg = NpmPackage(plant.name, plant.lock, ws=plant.ws, dev=dev)
        else:
            pkg = NpmPackage(plant.name, plant.lock, dev=dev or (plant.declared is None and rng.random() < 0.3))
            if plant.declared is None:
                parent.requires[plant.name] = f"^{plant.lock}"
        if plant.peer:  # resolved against a peer, react when the project has it
            peer = next((p for p in hoisted if p.name == "react"), None) or rng.choice(hoisted)
            pkg.peer_suffix = f"{peer.name}@{peer.version}"
        packages.append(pkg)

    def _specs(self, root: NpmProject, packages: list[NpmPackage]) -> None:
        """The ranges each installed copy answers (the keys of yarn.lock entries)."""
        wanted: dict[int, list[str]] = {}
        hoisted = {p.name: p for p in reversed(packages) if not p.parents and not p.ws and not p.alias}
        local = {(p.ws, p.name): p for p in reversed(packages) if p.ws and not p.parents}

        def want(proj_path: str, name: str, rng_text: str) -> None:
            target = local.get((proj_path, name)) or hoisted.get(name)
            if target is not None:
                specs = wanted.setdefault(id(target), [])
                if rng_text not in specs:
                    specs.append(rng_text)

        for proj in (root, *root.workspaces):
            for _, name, rng_text in proj.declared():
                want(proj.path, name, rng_text)
        for pkg in packages:
            if pkg.parents:
                continue
            for dep, rng_text in pkg.requires.items():
                if not rng_text.startswith("npm:"):
                    want(pkg.ws, dep, rng_text)
        for pkg in packages:
            if not pkg.specs:
                pkg.specs = tuple(wanted.get(id(pkg), ())) or (f"^{pkg.version}",)
