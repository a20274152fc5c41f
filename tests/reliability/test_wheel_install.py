"""batchdeck installed the way users install tools: from its wheel, into a fresh venv (issue 11.6).

Offline and fast on purpose: the wheel is built without build isolation (setuptools
and wheel come with the dev extras), and the fresh venv gets no copy of the
third-party packages but symlinks to the dev venv's files of exactly the
distributions batchdeck declares (and what they declare, transitively). So an
import of an undeclared package fails here as it would after ``pipx install``,
while ``test_every_third_party_import_is_declared`` names the culprit.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("engine", "console")     # themes/ goes in as console.builtin_themes (a link to it)


def _dist_key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    """Distributions batchdeck needs at run time (extras excluded), by normalised name."""
    declared = set()
    for text in metadata.requires("batchdeck") or []:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            declared.add(_dist_key(requirement.name))
    return declared


def _closure(names: set[str]) -> list[metadata.Distribution]:
    """The distributions ``names`` need, transitively, as installed in this (dev) venv."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        dist = metadata.distribution(name)
        seen[name] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_dist_key(requirement.name))
    return list(seen.values())


def _optional() -> set[str]:
    """Distributions of a user-facing extra (``batchdeck[cluster]``), by normalised name."""
    optional = set()
    for text in metadata.requires("batchdeck") or []:
        requirement = Requirement(text)
        extras = {m.group(1) for m in re.finditer(r"extra\s*==\s*['\"]([^'\"]+)", str(requirement.marker or ""))}
        if extras - {"dev"}:
            optional.add(_dist_key(requirement.name))
    return optional


def _module_level_imports(tree: ast.Module) -> list[ast.stmt]:
    """Import statements that run when the module is imported (not inside a function)."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
            and not any(isinstance(parent, ast.FunctionDef | ast.AsyncFunctionDef)
                        for parent in _parents(tree, node))]


def _parents(tree: ast.AST, target: ast.AST) -> list[ast.AST]:
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            if child is target:
                return [node, *_parents(tree, node)]
    return []


def _third_party_imports(*, eager_only: bool = False) -> dict[str, str]:
    """Top-level module -> a file importing it, for every non-stdlib import in the shipped packages
    (with ``eager_only``, only imports that run when their module is imported)."""
    found: dict[str, str] = {}
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in (_module_level_imports(tree) if eager_only else ast.walk(tree)):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in SHIPPED:
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_declared():
    providers = metadata.packages_distributions()
    declared, optional = _declared(), _optional()

    def dists(module: str) -> set[str]:
        return {_dist_key(d) for d in providers.get(module, [module])}

    missing = {module: where for module, where in _third_party_imports().items()
               if not (declared | optional) & dists(module)}
    assert not missing, f"imported but not in [project.dependencies]: {missing}"
    # an extra's package may only be imported where it is needed, so the tool starts without it
    eager = {module: where for module, where in _third_party_imports(eager_only=True).items()
             if not declared & dists(module)}
    assert not eager, f"an optional extra imported when its module loads: {eager}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv outside the source tree with batchdeck installed from its wheel; its bin dir."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    for package in SHIPPED:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(work / "dist"), str(source)],
        capture_output=True, text=True, timeout=120,
    )
    assert build.returncode == 0, build.stderr
    wheel = next((work / "dist").glob("batchdeck-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        assert tops - {t for t in tops if t.endswith((".dist-info", ".data"))} == set(SHIPPED), tops
        assert {"console/builtin_themes/dark.toml", "console/builtin_themes/light.toml"} <= set(archive.namelist())

    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
         str(wheel)],
        capture_output=True, text=True, timeout=120,
    )
    assert install.returncode == 0, install.stderr

    dev_site = Path(sysconfig.get_path("purelib"))
    for dist in _closure(_declared()):
        for top in {Path(str(f)).parts[0] for f in dist.files or []}:
            if top in ("..", "bin") or top.endswith(".pth") or (site / top).exists():
                continue
            if (dev_site / top).exists():
                (site / top).symlink_to(dev_site / top)
    return venv / "bin"


def _isolated_env(home: Path) -> dict[str, str]:
    """The caller's environment without anything pointing into the source tree or at a user's files."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "BATCHDECK_DB", "MYPYPATH", "GITHUB_TOKEN", "GH_TOKEN")}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"))
    return env


def _run(bin_dir: Path, cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = _isolated_env(cwd)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run([str(bin_dir / "batchdeck"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


PROBE = """
import json
from importlib import metadata, resources

import engine
from console.themes import theme_files
from engine.jobs.ioc_scan.data import SHAI_HULUD_2

print(json.dumps({
    "engine": engine.__file__,
    "version": metadata.version("batchdeck"),
    "iocs": str(SHAI_HULUD_2) if SHAI_HULUD_2.is_file() else None,
    "themes": {name: str(path) for name, path in theme_files().items()},
    "stylesheet": resources.files("console").joinpath("console.tcss").is_file(),
    "typed": resources.files("engine").joinpath("py.typed").is_file(),
}))
"""


def test_the_installed_package_is_the_wheel_and_carries_its_data(installed, tmp_path):
    probe = subprocess.run([str(installed / "python"), "-c", PROBE], cwd=tmp_path, env=_isolated_env(tmp_path),
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    site = installed.parent

    def shipped(path: str | None) -> bool:
        return path is not None and Path(path).is_relative_to(site) and not Path(path).is_relative_to(ROOT)

    assert shipped(found["engine"]) and found["version"] == metadata.version("batchdeck")
    assert shipped(found["iocs"])                                  # the IOC list `scan`/`demo` name
    assert {"dark", "light", "high-contrast"} <= set(found["themes"])
    assert all(shipped(path) for path in found["themes"].values())
    assert not any(site.glob("lib/python*/site-packages/themes"))   # no generic top-level package
    assert found["stylesheet"] and found["typed"]


def test_a_script_type_checks_against_the_installed_engine(installed, tmp_path):
    """engine ships py.typed (PEP 561), so mypy reads its annotations instead of skipping it."""
    script = tmp_path / "report.py"
    script.write_text("from engine.safetext import visible\n\n"
                      "shown: str = visible('ok')\n"
                      "count: int = visible('not a number')\n")
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir", str(tmp_path / "cache"),
         "--python-executable", str(installed / "python"), str(script)],
        cwd=tmp_path, env=_isolated_env(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert "import-untyped" not in checked.stdout, checked.stdout
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"{script.name}:4:") and "[assignment]" in errors[0], checked.stdout


def test_demo_and_scan_run_from_an_empty_directory(installed, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    demo = _run(installed, empty, "demo", "--headless", "--repos", "6", "--latency-ms", "0",
                "--db", str(tmp_path / "demo.db"))
    assert demo.returncode == 0, demo.stderr
    assert "Traceback" not in demo.stderr and "compromised packages found" in demo.stdout.lower()

    sim = subprocess.Popen([str(installed / "batchdeck"), "sim", "--repos", "8", "--seed", "3", "--org", "acme"],
                           cwd=empty, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = (sim.stdout.readline() if sim.stdout else "").strip()
        assert url.startswith("http"), sim.stderr.read() if sim.stderr else ""
        shipped = subprocess.run([str(installed / "python"), "-c",
                                  "from engine.jobs.ioc_scan.data import SHAI_HULUD_2; print(SHAI_HULUD_2)"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        iocs = tmp_path / "iocs.csv"      # a user's own list; a copy of the shipped one, which the sim plants
        shutil.copy(shipped, iocs)
        scan = _run(installed, empty, "scan", "--org", "acme", "--iocs", str(iocs), "--api-url", url,
                    "--token", "sim-token", "--format", "json", "--headless", "--db", str(tmp_path / "scan.db"))
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    assert scan.returncode in (0, 1), scan.stderr      # 1: something matched
    assert "Traceback" not in scan.stderr
    assert json.loads(scan.stdout) and "completed" in scan.stderr
    assert list(empty.iterdir()) == []                 # nothing written where the user stood


SCRIPT = '''
import asyncio

from engine import BatchConfig, BatchMetrics, Engine, IOCMatch, RunState


async def main() -> None:
    async with Engine.open("script.db") as engine:
        run = await engine.scan(org="acme", config=BatchConfig(max_concurrent_requests=8))
        kinds = [event.kind async for event in run.events()]
        assert kinds[-1] == "finished" and "progress" in kinds, kinds
        found = [m async for m in run.findings()]
        assert found and all(isinstance(m, IOCMatch) for m in found)
        metrics = await run.metrics()
        assert isinstance(metrics, BatchMetrics) and metrics.total_requests > 0
        again = await engine.scan(org="acme")
        await again.pause()
        await again.resume()
        assert await again.wait() is RunState.COMPLETED
        print(len(found), metrics.total_requests, await run.complete())


asyncio.run(main())
'''


def test_a_script_outside_the_tree_uses_the_public_api(installed, tmp_path):
    """Issue 15: the wheel alone, a script in a temporary directory, public names only."""
    script = tmp_path / "incident.py"
    script.write_text(SCRIPT)
    sim = subprocess.Popen([str(installed / "batchdeck"), "sim", "--repos", "6", "--seed", "3", "--org", "acme"],
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = (sim.stdout.readline() if sim.stdout else "").strip()
        assert url.startswith("http"), sim.stderr.read() if sim.stderr else ""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")
               and not k.startswith(("BATCHDECK_", "GITHUB_", "GH_"))}
        env.update(BATCHDECK_API_URL=url, GITHUB_TOKEN="sim-token", HOME=str(tmp_path))
        done = subprocess.run([str(installed / "python"), str(script)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    assert done.returncode == 0, done.stderr[-3000:]
    findings, requests, complete = done.stdout.split()
    assert int(findings) > 0 and int(requests) > 0 and complete == "True"
