"""Generate a GitHub org of repositories with planted compromised npm packages.

Why a generator of our own: ioc-scan is judged by comparing its findings with
``SimOrg.truth`` on an org no human could label by hand (hundreds of repos,
every lockfile dialect, MB-sized lockfiles, traps). The truth is derived from
what was actually written, with semantics implemented here independently of the
scanner (``lockfile_semver``), so a shared misreading cannot make both agree.
It never imports the scanner's parsers or IOC loader.

What an org holds (deterministic for a seed: same seed, byte-identical files):
mostly small repos (README, sources, one manifest + lockfile); npm monorepos
(``packages/*`` workspaces, one root lockfile, sometimes nested ``examples/*``
lockfiles); polyglot monorepos (``services/*`` each with its own stack); one
"mega" monorepo per 250 repos whose recursive tree exceeds
``data.TRUNCATE_TREE_ENTRIES`` and, with ``large_files``, whose lockfile is
several MB (as are a few other monorepo lockfiles); python, go, rust, ruby, php
and docs/infra repos; ~5% archived, ~5% forks; template groups of 3-5 repos
sharing a byte-identical package.json + lockfile (same blob sha); CRLF files;
malformed files (``SimOrg.malformed``, never in truth). With 30 repos or more,
every format of ``lockfiles.FORMATS`` is present.

Planting: IOC entries from the CSV (``Package,Version`` with ``= 1.2.3 || =
1.2.4`` alternatives) are planted into npm lockfiles at a compromised version
(direct, transitive, nested under another package, aliased, workspace-local,
pnpm peer variants) and into package.json with ranges that admit a compromised
version. Decoys put IOC names at safe versions and behind ranges that exclude
every compromised version (``^0.x`` traps included). Benign packages are never
IOC names. Malformed files never carry planted packages.

Truth: one dict per (repo, path, package, version, kind) a correct scanner must
report: ``{"repo": full_name, "path", "package", "version", "ecosystem": "npm",
"kind": "locked" | "declared", "line"}``. A lockfile shared by 3 repos gives 3
entries. ``declared`` gives one entry per compromised version the range admits
(``~0.0.7`` admits both ``0.0.7`` and ``0.0.8`` when both are listed).

Line convention (1-based, counted in ``\\n``; CRLF files count the same). For
locked findings, the line of the package's *record* in the section listing
resolved packages; when a version has several records in one file, the first:

- package-lock.json / npm-shrinkwrap.json v2, v3: the ``"node_modules/<path>": {``
  key line in ``packages`` (nested: ``node_modules/a/node_modules/<name>``,
  workspace-local: ``packages/web/node_modules/<name>``, alias:
  ``node_modules/<alias>`` whose ``"name"`` is the real package). v2's legacy
  ``dependencies`` tree comes after ``packages``, so it is never the first.
- package-lock.json v1: the ``"<name>": {`` key line in the (nested)
  ``dependencies`` tree.
- yarn.lock v1 and berry: the entry header line (``"pkg@^1.0.0", pkg@~1.0.1:``;
  berry ``"pkg@npm:^1.0.0":``, alias ``"alias@npm:pkg@^1.0.0":`` with
  ``resolution: "pkg@npm:1.2.3"``).
- pnpm-lock.yaml: the key line under ``packages:`` (v5 ``/pkg/1.2.3:`` or
  ``/pkg/1.2.3_react@18.2.0:``, v6 ``/pkg@1.2.3:`` or ``/pkg@1.2.3(react@18.2.0):``,
  v9 ``pkg@1.2.3:``), not the importers, not v9's ``snapshots:``.
- bun.lock: the ``"<key>": ["pkg@1.2.3", ...],`` line under ``packages``.
- package.json (declared): the line of the dependency (``"pkg": "^1.2.3",``) in
  dependencies, devDependencies, optionalDependencies or peerDependencies.

Not findings: root-project ranges repeated inside lockfiles (package-lock's
``packages[""]`` and workspace-folder entries, pnpm importers, bun
``workspaces``, berry ``@workspace:`` entries), dependency ranges inside package
records (``requires``/``dependencies`` of another package), and anything in
non-npm files (the shipped IOC list is npm only).
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
import tomllib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template

import yaml

from engine.errors import InputError
from engine.jobs.ioc_scan.data import SHAI_HULUD_2
from engine.sim import lockfile_npm as npm
from engine.sim import lockfile_polyglot as poly
from engine.sim import lockfile_python as py
from engine.sim.data import SimFile, SimOrg, SimRepo
from engine.sim.lockfile_planting import Plant, TreeBuilder, compromised_plant, decoy_plant
from engine.sim.lockfile_pools import CARGO, COMPOSER, GEMS, GO, NPM, NPM_DEV, PYPI
from engine.sim.lockfile_semver import satisfies
from engine.sim.lockfiles import FORMATS, Rendered, to_bytes

DEFAULT_IOCS = SHAI_HULUD_2   # the list the scanner ships: the demo plants what it will look for

NPM_LOCK_FORMATS = (
    "npm-lock-v1",
    "npm-lock-v2",
    "npm-lock-v3",
    "npm-shrinkwrap",
    "yarn-v1",
    "yarn-berry",
    "pnpm-v5",
    "pnpm-v6",
    "pnpm-v9",
    "bun",
)
_LOCK_WEIGHTS = (6, 12, 25, 3, 14, 8, 3, 5, 10, 5)
_WORKSPACE_FORMATS = tuple(f for f in NPM_LOCK_FORMATS if f != "npm-lock-v1")
_CAPS = {
    "npm-lock-v1": {"lockfile", "nested"},
    "npm-lock-v2": {"lockfile", "nested", "alias", "ws-local"},
    "npm-lock-v3": {"lockfile", "nested", "alias", "ws-local"},
    "npm-shrinkwrap": {"lockfile", "nested", "alias", "ws-local"},
    "yarn-v1": {"lockfile"},
    "yarn-berry": {"lockfile", "alias"},
    "pnpm-v5": {"lockfile", "peer"},
    "pnpm-v6": {"lockfile", "peer"},
    "pnpm-v9": {"lockfile", "peer"},
    "bun": {"lockfile", "nested", "ws-local"},
    "package-json": set(),
}
#: lockfile formats of the 600 KB-1 MiB lockfiles, with the filler package count that gives that size
MIDSIZE_FORMATS = {"npm-lock-v3": 1800, "pnpm-v9": 3000, "yarn-v1": 2200}
MIDSIZE_POOL = {f"@aaa-vendored/lib-{i:04d}": (f"1.{i % 7}.{i % 5}", f"2.0.{i % 3}") for i in range(4000)}
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_EPOCH = datetime(2014, 1, 1, tzinfo=UTC)
_NOW = datetime(2025, 11, 20, tzinfo=UTC)


# -- IOC list -----------------------------------------------------------------------
def read_ioc_csv(path: str | Path) -> dict[str, tuple[str, ...]]:
    """``Package,Version`` rows, the version field ``= 1.2.3`` or ``= 1.2.3 || = 1.2.4``.

    Kept apart from the scanner's IOC loader on purpose (see module docstring).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise InputError(f"cannot read IOC list {path}: {e.strerror or e}") from None
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    if not header or [h.strip().lower() for h in header[:2]] != ["package", "version"]:
        raise InputError(f"{path}:1: expected the header 'Package,Version'")
    out: dict[str, tuple[str, ...]] = {}
    for lineno, row in enumerate(rows, start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2 or not row[0].strip():
            raise InputError(f"{path}:{lineno}: expected 'package,version', got {','.join(row)!r}")
        versions = [v.strip().lstrip("=").strip() for v in row[1].split("||")]
        if not all(versions):
            raise InputError(f"{path}:{lineno}: empty version in {row[1]!r}")
        name = row[0].strip()
        out[name] = tuple(dict.fromkeys((*out.get(name, ()), *versions)))
    if not out:
        raise InputError(f"{path}: no IOC entries")
    return out


# -- org generation -------------------------------------------------------------------
_DOMAINS = """billing auth payments checkout search inventory catalog orders shipping notifications analytics
reporting identity gateway ledger pricing accounts onboarding support marketing growth recommendations fraud
risk compliance audit media assets cms design-system mobile admin partner vendor warehouse fleet routing
scheduler events metrics logging tracing alerts status feature-flags experiments data etl crm hr payroll legal
security sso secrets platform devtools release deploy edge chat email sms push feeds profiles social reviews
ratings loyalty rewards coupons tax invoices subscriptions quotes contracts maps geo booking calendar
""".split()
_SUFFIXES = {
    "node": "api service web dashboard frontend ui sdk client bot worker lambda cli app portal widget".split(),
    "python": "pipeline worker api service jobs ml etl notebooks scripts tools".split(),
    "go": "service gateway proxy operator agent cli exporter".split(),
    "rust": "engine core agent cli parser".split(),
    "ruby": "app admin api".split(),
    "php": "site portal plugin api".split(),
    "docs": "docs runbooks terraform infra handbook adr playbooks helm-charts".split(),
    "monorepo": "monorepo platform workspace".split(),
    "services": "services stack backend".split(),
}
_FORK_NAMES = """left-pad node-semver react-datepicker swagger-ui json-schema-faker chartjs-plugin-zoom
markdown-it express-rate-limit pdfkit sharp-cli dotenv-safe http-proxy-middleware leaflet-draw""".split()
_LANGUAGE = {
    "node": "TypeScript",
    "python": "Python",
    "go": "Go",
    "rust": "Rust",
    "ruby": "Ruby",
    "php": "PHP",
    "docs": "HCL",
    "monorepo": "TypeScript",
    "services": "Go",
    "mega": "TypeScript",
}
_LICENSE = b"MIT License\n\nCopyright (c) 2019 Acme Corp\n\nPermission is hereby granted, free of charge, ...\n"
_GITIGNORE = {
    "node": b"node_modules/\ndist/\ncoverage/\n.env\n",
    "python": b"__pycache__/\n*.pyc\n.venv/\ndist/\n.pytest_cache/\n",
    "go": b"/bin/\n*.test\ncoverage.out\n",
    "rust": b"/target\n",
    "ruby": b"/log/*\n/tmp/*\n.bundle\n",
    "php": b"/vendor/\n.env\n",
}
_TSCONFIG = b'{\n  "extends": "../../tsconfig.base.json",\n  "compilerOptions": {"outDir": "dist"},\n  "include": ["src"]\n}\n'
_README = "# $name\n\nOwned by the $team team.\n\n## Development\n\nSee CONTRIBUTING.md.\n"
_CI = """name: ci
on: [push, pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: make test  # $stack
"""
_SOURCES = {
    "node": {
        "src/index.ts": "export const service = '$name';\n",
        "src/lib/config.ts": "export const config = { name: '$name' };\n",
        "test/index.test.ts": "import { service } from '../src';\ntest('$name', () => expect(service).toBe('$name'));\n",
    },
    "python": {
        "src/$mod/__init__.py": '"""$name."""\n',
        "src/$mod/main.py": "def main() -> None:\n    print('$name')\n",
        "tests/test_main.py": "from $mod.main import main\n\n\ndef test_main():\n    main()\n",
    },
    "go": {"main.go": 'package main\n\nfunc main() { println("$name") }\n', "internal/$mod/$mod.go": "package $mod\n"},
    "rust": {"src/main.rs": 'fn main() { println!("$name"); }\n'},
    "ruby": {
        "config.ru": "require_relative 'config/environment'\nrun Rails.application\n",
        "app/models/application_record.rb": "class ApplicationRecord < ActiveRecord::Base\nend\n",
    },
    "php": {"public/index.php": "<?php\necho '$name';\n", "src/Kernel.php": "<?php\nnamespace App;\n\nclass Kernel {}\n"},
    "docs": {"docs/index.md": "# $name\n", "terraform/main.tf": 'resource "null_resource" "$mod" {}\n'},
}
_MALFORM_SHOWCASE = ("truncated-json", "garbage", "invalid-yaml", "invalid-toml", "truncated-package-json")


class _Generator:
    def __init__(self, login: str, n: int, seed: int, iocs: dict[str, tuple[str, ...]], large_files: bool) -> None:
        self.login, self.n, self.large = login, n, large_files
        self.rng = random.Random(f"batchdeck-sim:{login}:{seed}")
        self.iocs = iocs
        ioc_names = set(iocs)
        self.npm_pool = {k: v for k, v in NPM.items() if k not in ioc_names}
        self.tree = TreeBuilder(self.rng, self.npm_pool, NPM_DEV)
        plantable = [k for k, v in iocs.items() if all(_SEMVER.match(x) for x in v)]
        multi = [k for k in plantable if len(iocs[k]) > 1]
        single = [k for k in plantable if len(iocs[k]) == 1]
        want = max(24, n // 4)
        pick = self.rng.sample(multi, min(len(multi), want // 2))
        pick += self.rng.sample(single, min(len(single), want - len(pick)))
        self.ioc_pool = sorted(pick)
        self.findings: dict[str, dict[tuple[str, str, str], int]] = {}  # blob sha -> (pkg, ver, kind) -> line
        self.broken: dict[str, str] = {}  # blob sha -> reason
        self.names: set[str] = set()

    # -- files ---------------------------------------------------------------------
    def put(self, files: dict[str, SimFile], path: str, data: str | bytes, crlf: bool = False) -> SimFile:
        f = SimFile(path, to_bytes(data, crlf) if isinstance(data, str) else data)
        files[path] = f
        return f

    def _record(self, f: SimFile, found: dict[tuple[str, str, str], int]) -> None:
        if found:
            self.findings.setdefault(f.sha, {}).update(found)

    def put_npm(self, files: dict[str, SimFile], base: str, proj: npm.NpmProject, fmt: str, crlf: bool) -> None:
        """package.json of the project (and of its workspaces) plus its lockfile."""
        for p in (proj, *proj.workspaces):
            where = "/".join(x for x in (base, p.path) if x)
            rendered = npm.package_json(p)
            f = self.put(files, f"{where}/package.json" if where else "package.json", rendered.text, crlf)
            found: dict[tuple[str, str, str], int] = {}
            for _, name, rng_text in p.declared():
                for v in self.iocs.get(name, ()):
                    if _SEMVER.match(v) and satisfies(v, rng_text):
                        key = (name, v, "declared")
                        found[key] = min(found.get(key, 1 << 30), rendered.records[(name, rng_text)])
            self._record(f, found)
        if fmt == "package-json":
            return
        rendered = npm.render(fmt, proj)
        name = FORMATS[fmt].filename
        f = self.put(files, f"{base}/{name}" if base else name, rendered.text, crlf)
        self._record(f, self._locked(proj, rendered))

    def _locked(self, proj: npm.NpmProject, rendered: Rendered) -> dict[tuple[str, str, str], int]:
        found = {}
        for pkg in proj.packages:
            if pkg.version in self.iocs.get(pkg.name, ()):
                found[(pkg.name, pkg.version, "locked")] = rendered.records[(pkg.name, pkg.version)]
        return found

    # -- planting ------------------------------------------------------------------
    def plants(self, fmt: str, p_bad: float, p_decoy: float, workspaces: Sequence[str] = ()) -> list[Plant]:
        rng = self.rng
        caps = _CAPS[fmt]
        out: list[Plant] = []
        names = rng.sample(self.ioc_pool, min(4, len(self.ioc_pool)))
        if not names:
            return out
        if rng.random() < p_bad:
            for name in names[: min(len(names), rng.choice((1, 1, 1, 2, 3)))]:
                out.append(compromised_plant(rng, name, self.iocs[name], caps))
        if len(names) == 4 and rng.random() < p_decoy:
            decoy = decoy_plant(rng, names[3], self.iocs[names[3]], caps)
            if decoy:
                out.append(decoy)
        for plant in out:
            if workspaces and rng.random() < 0.7:
                plant.ws = rng.choice(workspaces)
        if "ws-local" in caps:  # one declared plant installed in its workspace's own node_modules
            for plant in out:
                if plant.ws and plant.declared is not None and plant.lock is not None:
                    plant.ws_local = True
                    break
        return out

    # -- names, metadata -------------------------------------------------------------
    def name_for(self, stack: str) -> str:
        rng = self.rng
        for _ in range(50):
            name = f"{rng.choice(_DOMAINS)}-{rng.choice(_SUFFIXES[stack])}"
            if name not in self.names:
                break
        else:
            name = f"{name}-{len(self.names)}"
        self.names.add(name)
        return name

    def repo(self, name: str, stack: str, files: dict[str, SimFile], **kw) -> SimRepo:
        rng = self.rng
        created = _EPOCH + timedelta(seconds=rng.randrange(int((datetime(2024, 6, 1, tzinfo=UTC) - _EPOCH).total_seconds())))
        pushed = created + timedelta(seconds=rng.randrange(int((_NOW - created).total_seconds())))
        updated = min(_NOW, pushed + timedelta(seconds=rng.randrange(86400 * 3)))
        iso = "%Y-%m-%dT%H:%M:%SZ"
        return SimRepo(
            id=0,
            name=name,
            owner=self.login,
            full_name=f"{self.login}/{name}",
            default_branch=rng.choices(("main", "master", "trunk", "develop"), weights=(60, 25, 8, 7))[0],
            private=rng.random() < 0.25,
            description=kw.pop("description", f"{name.replace('-', ' ').capitalize()}"),
            language=_LANGUAGE.get(stack),
            created_at=created.strftime(iso),
            updated_at=updated.strftime(iso),
            pushed_at=pushed.strftime(iso),
            files=files,
            **kw,
        )

    # -- common scaffolding --------------------------------------------------------------
    def scaffold(self, files: dict[str, SimFile], name: str, stack: str, base: str = "") -> None:
        pre = f"{base}/" if base else ""
        self.put(files, f"{pre}README.md", Template(_README).substitute(name=name, team=name.split("-")[0]))
        if not base:
            self.put(files, "LICENSE", _LICENSE)
            if self.rng.random() < 0.6:
                self.put(files, ".github/workflows/ci.yml", Template(_CI).substitute(stack=stack))
        if stack in _GITIGNORE:
            self.put(files, f"{pre}.gitignore", _GITIGNORE[stack])
        mod = name.replace("-", "_")
        for path, text in _SOURCES[stack].items():
            self.put(files, pre + Template(path).substitute(mod=mod), Template(text).substitute(name=name, mod=mod))

    # -- repo kinds -------------------------------------------------------------------
    def node_project(self, name: str, fmt: str, size: int | None = None, p_bad: float = 0.3, p_decoy: float = 0.25,
                     plants: list[Plant] | None = None) -> npm.NpmProject:
        rng = self.rng
        size = size if size is not None else int(rng.lognormvariate(3.4, 0.7))
        if plants is None:
            plants = self.plants(fmt, p_bad, p_decoy)
        return self.tree.build(name, n_deps=rng.randint(3, 10), n_dev=rng.randint(1, 7), n_transitive=min(size, 180), plants=plants)

    def node_repo(self, fmt: str | None = None, plants: list[Plant] | None = None, p_bad: float = 0.3) -> tuple[str, dict]:
        rng = self.rng
        fmt = fmt or rng.choices((*NPM_LOCK_FORMATS, "package-json"), weights=(*_LOCK_WEIGHTS, 5))[0]
        name = self.name_for("node")
        files: dict[str, SimFile] = {}
        self.scaffold(files, name, "node")
        proj = self.node_project(name, fmt, plants=plants, p_bad=p_bad)
        self.put_npm(files, "", proj, fmt, crlf=rng.random() < 0.1)
        return name, files

    def python_repo(self, flavour: str | None = None, name: str | None = None, base: str = "", files: dict | None = None) -> tuple[str, dict]:
        rng = self.rng
        flavour = flavour or rng.choices(("requirements", "poetry", "pipenv", "uv", "pyproject"), weights=(8, 4, 3, 3, 1))[0]
        name = name or self.name_for("python")
        files = {} if files is None else files
        pre = f"{base}/" if base else ""
        self.scaffold(files, name, "python", base)
        tools = ("pytest", "black", "mypy", "ruff", "coverage")
        chosen = rng.sample([n for n in PYPI if n not in tools], rng.randint(4, 16))
        pins = [(n, PYPI[n][0] if rng.random() < 0.8 else PYPI[n][-1]) for n in chosen]
        dev = [(n, PYPI[n][0]) for n in rng.sample(tools, 2)]
        crlf = rng.random() < 0.15
        if flavour == "requirements":
            for fname, text in py.requirements(pins, dev, rng).items():
                self.put(files, pre + fname, text, crlf)
        elif flavour == "poetry":
            self.put(files, pre + "pyproject.toml", py.pyproject_poetry(name, pins[:6], dev))
            self.put(files, pre + "poetry.lock", py.poetry_lock(pins + dev, {n for n, _ in dev}))
        elif flavour == "pipenv":
            self.put(files, pre + "Pipfile", py.pipfile(pins, dev))
            self.put(files, pre + "Pipfile.lock", py.pipfile_lock(pins, dev))
        elif flavour == "uv":
            self.put(files, pre + "pyproject.toml", py.pyproject_pep621(name, pins[:6], dev))
            self.put(files, pre + "uv.lock", py.uv_lock(name, pins + dev))
        else:
            self.put(files, pre + "pyproject.toml", py.pyproject_pep621(name, pins, dev))
        if not base and rng.random() < 0.1:  # a frontend folder with its own lockfile
            proj = self.node_project(f"{name}-frontend", "yarn-v1", size=20, p_bad=0.2)
            self.put_npm(files, "frontend", proj, "yarn-v1", crlf=False)
        return name, files

    def go_repo(self, name: str | None = None, base: str = "", files: dict | None = None) -> tuple[str, dict]:
        rng = self.rng
        name = name or self.name_for("go")
        files = {} if files is None else files
        pre = f"{base}/" if base else ""
        self.scaffold(files, name, "go", base)
        mods = rng.sample(list(GO), rng.randint(4, 14))
        direct = [(m, GO[m][0]) for m in mods[: len(mods) // 2]]
        indirect = [(m, GO[m][0]) for m in mods[len(mods) // 2 :]]
        self.put(files, pre + "go.mod", poly.go_mod(f"github.com/{self.login}/{name}", direct, indirect))
        self.put(files, pre + "go.sum", poly.go_sum(direct + indirect))
        return name, files

    def misc_repo(self, stack: str) -> tuple[str, dict]:
        rng = self.rng
        name = self.name_for(stack)
        files: dict[str, SimFile] = {}
        self.scaffold(files, name, stack)
        if stack == "rust":
            pins = [(c, CARGO[c][0]) for c in rng.sample(list(CARGO), rng.randint(5, 25))]
            self.put(files, "Cargo.toml", poly.cargo_toml(name, pins[:5]))
            self.put(files, "Cargo.lock", poly.cargo_lock(name, pins))
        elif stack == "ruby":
            pins = [(g, GEMS[g][0]) for g in rng.sample(list(GEMS), rng.randint(5, 25))]
            self.put(files, "Gemfile", poly.gemfile(pins[:5]))
            self.put(files, "Gemfile.lock", poly.gemfile_lock(pins[:5], pins))
        elif stack == "php":
            pins = [(c, COMPOSER[c][0]) for c in rng.sample(list(COMPOSER), rng.randint(4, 15))]
            self.put(files, "composer.json", poly.composer_json(f"{self.login}/{name}", pins[:4]))
            self.put(files, "composer.lock", poly.composer_lock(pins))
        return name, files

    def monorepo(self, n_ws: int, fmt: str, stack: str = "monorepo", ws_local: int = 1, name: str | None = None) -> tuple[str, dict]:
        rng = self.rng
        name = name or self.name_for(stack)
        files: dict[str, SimFile] = {}
        self.scaffold(files, name, "node")
        folders = rng.choices(("packages", "apps", "libs"), weights=(6, 2, 2), k=n_ws)
        ws: list[tuple[str, str]] = []  # (folder path, package name)
        for i, folder in enumerate(folders):
            short = f"{rng.choice(_DOMAINS)}-{i}" if n_ws > 40 else f"{rng.choice(_DOMAINS)}{'' if i < 20 else i}"
            if any(short == w[0].rsplit("/", 1)[1] for w in ws):
                short = f"{short}-{i}"
            ws.append((f"{folder}/{short}", f"@{self.login}/{short}"))
        plants = self.plants(fmt, 0.6, 0.4, workspaces=[p for p, _ in ws])
        proj = self.tree.build(name, n_deps=rng.randint(0, 2), n_dev=rng.randint(3, 6), n_transitive=rng.randint(40, 160),
                               plants=plants, workspaces=ws, ws_local=ws_local, ws_deps=rng.randint(3, 8))
        proj.scripts = {"build": "turbo run build", "test": "turbo run test"}
        self.put_npm(files, "", proj, fmt, crlf=False)
        for path, pkg_name in ws:
            self.put(files, f"{path}/src/index.ts", f"export * from './{pkg_name.rsplit('/', 1)[1]}';\n")
            self.put(files, f"{path}/tsconfig.json", _TSCONFIG)
            self.put(files, f"{path}/README.md", f"# {pkg_name}\n")
            self.put(files, f"{path}/test/index.test.ts", f"test('{pkg_name}', () => {{}});\n")
        if rng.random() < 0.4:  # an example app with its own, nested lockfile
            sub_fmt = rng.choice(("npm-lock-v3", "yarn-v1", "pnpm-v9"))
            self.put_npm(files, "examples/basic", self.node_project(f"{name}-example", sub_fmt, size=25), sub_fmt, crlf=False)
        return name, files

    def services_repo(self) -> tuple[str, dict]:
        rng = self.rng
        name = self.name_for("services")
        files: dict[str, SimFile] = {}
        self.scaffold(files, name, "docs")
        self.put(files, "docker-compose.yml", "services:\n" + "".join(f"  svc{i}:\n    build: ./services/svc{i}\n" for i in range(3)))
        for _ in range(rng.randint(3, 9)):
            svc = f"{rng.choice(_DOMAINS)}-{rng.choice(('api', 'worker', 'gateway', 'web'))}"
            base = f"services/{svc}"
            if any(p.startswith(base + "/") for p in files):
                continue
            stack = rng.choice(("node", "node", "python", "go"))
            if stack == "node":
                fmt = rng.choices(NPM_LOCK_FORMATS, weights=_LOCK_WEIGHTS)[0]
                self.scaffold(files, svc, "node", base)
                self.put_npm(files, base, self.node_project(svc, fmt), fmt, crlf=False)
            elif stack == "python":
                self.python_repo("requirements", name=svc, base=base, files=files)
            else:
                self.go_repo(name=svc, base=base, files=files)
        return name, files

    def docs_repo(self) -> tuple[str, dict]:
        name = self.name_for("docs")
        files: dict[str, SimFile] = {}
        self.scaffold(files, name, "docs")
        for i in range(self.rng.randint(2, 12)):
            self.put(files, f"docs/{i:02d}-{self.rng.choice(_DOMAINS)}.md", f"# Runbook {i}\n\nSteps for {name}.\n")
        return name, files

    # -- malformed files ---------------------------------------------------------------
    def malform(self, files: dict[str, SimFile], how: str) -> bool:
        """Replace a finding-free file of ``files`` with a broken one; False if none fits."""
        rng = self.rng
        targets = {
            "truncated-json": ("package-lock.json", "composer.lock", "Pipfile.lock", "npm-shrinkwrap.json"),
            "garbage": ("package-lock.json", "composer.lock", "Pipfile.lock"),
            "invalid-yaml": ("pnpm-lock.yaml",),
            "invalid-toml": ("poetry.lock", "Cargo.lock", "uv.lock"),
            "truncated-package-json": ("package.json",),
        }[how]
        cands = [f for p, f in files.items() if f.name in targets and f.sha not in self.findings]
        if not cands:
            return False
        f = rng.choice(cands)
        text = f.content.decode()
        if how in ("truncated-json", "truncated-package-json"):
            data, reason = text[: rng.randint(len(text) // 3, 2 * len(text) // 3)].encode(), "truncated JSON"
        elif how == "garbage":
            data, reason = b"\x89PNG\r\n\x1a\n\xff\xfe" + rng.randbytes(rng.randint(200, 4000)), "binary garbage, not UTF-8 text"
        elif how == "invalid-yaml":
            at = text.find("{integrity: ", len(text) // 2)
            at = at if at > 0 else text.find("{integrity: ")
            data, reason = (text[: at + 20] + "\n  broken: [\n").encode(), "invalid YAML: unclosed flow mapping"
        else:
            at = text.find('version = "', len(text) // 3)
            data, reason = (text[: at + 13] + "\n").encode(), "invalid TOML: unterminated string"
        if not _fails_to_parse(f.name, data):  # never call a file malformed that parses
            data, reason = b"\x89PNG\r\n\x1a\n\xff\xfe" + rng.randbytes(512), "binary garbage, not UTF-8 text"
        self.put(files, f.path, data)
        self.broken[files[f.path].sha] = reason
        return True

    # -- the org ------------------------------------------------------------------------
    def kinds(self) -> list[tuple]:
        """What each repo will be; the showcase first so that small orgs hold every format."""
        n, rng = self.n, self.rng
        showcase: list[tuple] = [("node", fmt, "bad") for fmt in (*NPM_LOCK_FORMATS, "package-json")]
        showcase += [("python", f) for f in ("requirements", "poetry", "pipenv", "uv", "pyproject")]
        showcase += [("go",), ("misc", "rust"), ("misc", "ruby"), ("misc", "php"), ("docs",)]
        showcase += [("template",)] * 3 + [("fork",), ("monorepo", "npm-lock-v3"), ("services",)]
        showcase += [("malformed", how) for how in _MALFORM_SHOWCASE]
        special: list[tuple] = []
        if n >= 8:
            special += [("mega", i) for i in range(max(1, n // 250))]
        if n >= 30:
            special += [("large", i) for i in range(max(1, n // 150))] if self.large else []
        rest = max(0, n - len(showcase) - len(special))
        bag = rng.choices(
            [("node",), ("python",), ("go",), ("misc", "rust"), ("misc", "ruby"), ("misc", "php"), ("docs",),
             ("monorepo",), ("services",), ("fork",), ("template",), ("malformed", None)],
            weights=(38, 16, 7, 4, 4, 4, 5, 5, 3, 5, 6, 3),
            k=rest,
        )
        # the 600 KB-1 MiB lockfiles take the last places, so the draws above stay those of before
        midsize = [("midsize", fmt) for fmt in MIDSIZE_FORMATS] if n >= 100 and self.large else []
        return (special + showcase + bag)[:n - len(midsize)] + midsize

    def build(self) -> SimOrg:
        makers: dict[str, Callable[[tuple], tuple[str, dict, dict]]] = {  # name, files, repo kwargs
            "node": self._node,
            "python": lambda k: (*self.python_repo(k[1] if len(k) > 1 else None), {}),
            "go": lambda k: (*self.go_repo(), {}),
            "misc": lambda k: (*self.misc_repo(k[1]), {}),
            "docs": lambda k: (*self.docs_repo(), {}),
            "services": lambda k: (*self.services_repo(), {}),
            "monorepo": self._monorepo,
            "mega": self._mega,
            "large": self._large,
            "midsize": self._midsize,
            "fork": self._fork,
            "malformed": self._malformed,
        }
        built: list[tuple[str, str, dict, dict]] = []  # name, stack, files, repo kwargs
        kinds = self.kinds()
        for kind in kinds:
            if kind[0] != "template":
                name, files, kw = makers[kind[0]](kind)
                built.append((name, kw.pop("stack", kind[0] if kind[0] != "misc" else kind[1]), files, kw))
        built += self.templates(sum(k[0] == "template" for k in kinds))
        repos = [self.repo(name, stack, files, **kw) for name, stack, files, kw in built]
        self.finish(repos)
        org_id = 10_000 + int(hashlib.sha1(self.login.encode()).hexdigest()[:6], 16)
        org = SimOrg(self.login, org_id, repos)
        org.truth, org.malformed = self.truth(org.repos)
        return org

    def _node(self, kind: tuple) -> tuple[str, dict, dict]:
        showcase = len(kind) > 2  # a showcase repo always carries a compromised package
        return (*self.node_repo(kind[1] if len(kind) > 1 else None, p_bad=1.0 if showcase else 0.3), {})

    def _monorepo(self, kind: tuple) -> tuple[str, dict, dict]:
        fmt = kind[1] if len(kind) > 1 else self.rng.choice(_WORKSPACE_FORMATS)
        return (*self.monorepo(self.rng.randint(4, 30), fmt), {})

    def _mega(self, kind: tuple) -> tuple[str, dict, dict]:
        """Big enough that a recursive tree listing is truncated (and, with
        large_files, a lockfile of several MB)."""
        fmt = "npm-lock-v3" if kind[1] % 2 == 0 else "pnpm-v9"
        name = f"{self.login}-monorepo" if kind[1] == 0 and f"{self.login}-monorepo" not in self.names else None
        if name:
            self.names.add(name)
        n_ws = self.rng.randint(430, 520)
        return (*self.monorepo(n_ws, fmt, ws_local=12 if self.large else 0, name=name), {"stack": "mega"})

    def _large(self, kind: tuple) -> tuple[str, dict, dict]:
        fmt = self.rng.choice(("npm-lock-v2", "npm-lock-v3", "npm-shrinkwrap", "bun"))
        return (*self.monorepo(self.rng.randint(180, 260), fmt, ws_local=24), {"stack": "monorepo"})

    def _midsize(self, kind: tuple) -> tuple[str, dict, dict]:
        """A lockfile of 600 KB-1 MiB whose compromised package lies past byte 512,000: GraphQL's
        ``Blob.text`` cuts it there, so only a scanner that honours ``isTruncated`` finds it.

        Filler packages (``@aaa-vendored/lib-NNNN``, never IOC names) sort before every IOC
        name, so the planted record, the alphabetically last plantable IOC, comes after them.
        Its own seeded random stream and pool leave the other repositories' draws as they were.
        """
        fmt = kind[1]
        plantable = sorted(k for k, v in self.iocs.items() if all(_SEMVER.match(x) for x in v))
        main_rng, self.rng = self.rng, random.Random(f"batchdeck-sim:midsize:{self.login}:{fmt}")
        try:
            name = self.name_for("monorepo")
            files: dict[str, SimFile] = {}
            self.scaffold(files, name, "node")
            builder = TreeBuilder(self.rng, MIDSIZE_POOL, frozenset(list(MIDSIZE_POOL)[:300]))
            plants = []
            if plantable:
                ioc = plantable[-1]
                version = self.iocs[ioc][0]
                plants.append(Plant(ioc, version, "^" + version))
            proj = builder.build(name, n_deps=5, n_dev=3, n_transitive=MIDSIZE_FORMATS[fmt], plants=plants)
            self.put_npm(files, "", proj, fmt, crlf=False)
        finally:
            self.rng = main_rng
        return name, files, {"stack": "monorepo"}

    def _fork(self, kind: tuple) -> tuple[str, dict, dict]:
        free = [f for f in _FORK_NAMES if f not in self.names]
        name = self.rng.choice(free) if free else self.name_for("node") + "-fork"
        self.names.add(name)
        files: dict[str, SimFile] = {}
        self.scaffold(files, name, "node")
        fmt = self.rng.choice(("npm-lock-v3", "yarn-v1", "npm-lock-v1"))
        self.put_npm(files, "", self.node_project(name, fmt), fmt, crlf=False)
        return name, files, {"stack": "node", "fork": True, "description": f"Fork of {name}"}

    def _malformed(self, kind: tuple) -> tuple[str, dict, dict]:
        how = kind[1] or self.rng.choice(_MALFORM_SHOWCASE)
        if how == "garbage":
            name, files = self.misc_repo("php")
        elif how == "invalid-toml":
            name, files = self.python_repo("poetry")
        else:
            fmt = {"truncated-json": "npm-lock-v3", "invalid-yaml": "pnpm-v6"}.get(how, "yarn-v1")
            name, files = self.node_repo(fmt, plants=[])
        self.malform(files, how)
        return name, files, {"stack": {"garbage": "php", "invalid-toml": "python"}.get(how, "node")}

    def templates(self, count: int) -> list[tuple[str, str, dict, dict]]:
        """Groups of repos made from one template: byte-identical package.json + lockfile."""
        rng = self.rng
        out: list[tuple[str, str, dict, dict]] = []
        while count > 0:
            size = min(count, rng.randint(3, 5))
            count -= size
            fmt = rng.choice(("npm-lock-v3", "npm-lock-v2", "yarn-v1", "pnpm-v9"))
            proj = self.node_project(f"{rng.choice(_DOMAINS)}-service-template", fmt, p_bad=0.6)
            shared: dict[str, SimFile] = {}
            self.put_npm(shared, "", proj, fmt, crlf=False)
            for _ in range(size):
                name = self.name_for("node")
                files = dict(shared)
                self.scaffold(files, name, "node")
                out.append((name, "node", files, {}))
        return out

    def finish(self, repos: list[SimRepo]) -> None:
        """ids in creation order; ~5% archived (pushed long ago)."""
        rng = self.rng
        for i, r in enumerate(sorted(repos, key=lambda r: (r.created_at, r.name))):
            r.id = 700_000_000 + i * 1_009 + rng.randrange(1_000)
        for r in rng.sample(repos, round(len(repos) * 0.05)):
            r.archived = True

    def truth(self, repos: list[SimRepo]) -> tuple[list[dict], list[dict]]:
        truth, malformed = [], []
        for r in repos:
            for path, f in r.files.items():
                for (pkg, ver, kind), line in self.findings.get(f.sha, {}).items():
                    truth.append({"repo": r.full_name, "path": path, "package": pkg, "version": ver,
                                  "ecosystem": "npm", "kind": kind, "line": line})
                if f.sha in self.broken:
                    malformed.append({"repo": r.full_name, "path": path, "reason": self.broken[f.sha]})
        truth.sort(key=lambda t: (t["repo"], t["path"], t["package"], t["version"], t["kind"]))
        malformed.sort(key=lambda m: (m["repo"], m["path"]))
        return truth, malformed


def _fails_to_parse(filename: str, data: bytes) -> bool:
    syntax = next((f.syntax for f in FORMATS.values() if f.filename == filename), "json")
    try:
        text = data.decode()
        if syntax == "yaml":
            yaml.safe_load(text)
        elif syntax == "toml":
            tomllib.loads(text)
        else:
            json.loads(text)
    except (ValueError, yaml.YAMLError):
        return True
    return False


def generate_org(
    login: str = "acme",
    repos: int = 50,
    seed: int = 1,
    iocs_path: str | Path | None = None,
    large_files: bool = True,
) -> SimOrg:
    """A generated org of ``repos`` repositories; see the module docstring."""
    if repos < 0:
        raise InputError(f"--repos must be >= 0, got {repos}")
    iocs = read_ioc_csv(iocs_path or DEFAULT_IOCS)
    return _Generator(login, repos, seed, iocs, large_files).build()


def demo_org(repos: int = 300, seed: int = 7) -> SimOrg:
    """The org ``make demo`` scans."""
    return generate_org(login="acme", repos=repos, seed=seed)
