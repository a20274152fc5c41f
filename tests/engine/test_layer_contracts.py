"""The import-linter contracts of `make lint` catch what they promise to (issue 11.5).

`make lint` only shows that today's code keeps them; this shows they are not vacuous (a
module pattern that matches nothing keeps a contract silently). A copy of the packages gets
one planted import per layer rule, and `lint-imports` must name each of them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PLANTED = {
    # module in the copy: (its text, the import lint-imports must report)
    "engine/probe_core.py": ("import engine.jobs.synthetic\n", "engine.probe_core -> engine.jobs.synthetic"),
    "engine/jobs/probe_kind.py": ("from engine.store import Store\n", "engine.jobs.probe_kind -> engine.store"),
    "console/panes/probe_pane.py": ("import engine.runner\n", "console.panes.probe_pane -> engine.runner"),
    "console/views/probe_view.py": ("from engine.store import Store\n", "console.views.probe_view -> engine.store"),
}
ALLOWED = {
    # an import under TYPE_CHECKING loads nothing
    "engine/jobs/probe_typed.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from engine.store import Store\n",
    # a pane reaches the store only through the layer that owns it (the console's session)
    "console/probe_session.py": "from engine.store import Store\n",
    "console/panes/probe_through_session.py": "import console.probe_session\n",
}


def test_each_layer_rule_names_an_import_that_breaks_it(tmp_path):
    for package in ("engine", "console"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    (tmp_path / "console" / "views").mkdir(exist_ok=True)
    (tmp_path / "console" / "views" / "__init__.py").touch()
    for module, (text, _) in PLANTED.items():
        (tmp_path / module).write_text(text)
    for module, text in ALLOWED.items():
        (tmp_path / module).write_text(text)

    env = {**os.environ, "PYTHONPATH": str(tmp_path)}       # the copy, not the checkout, is imported
    linted = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--no-logo"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    report = linted.stdout

    assert linted.returncode == 1, report + linted.stderr
    for rule in ("The engine core imports no job kind BROKEN",
                 "Panes, screens and results views touch neither the store nor the runner BROKEN"):
        assert rule in report, report
    assert "Job kinds import the contract, not the engine's machinery, the console or" in report
    for _, line in PLANTED.values():
        assert line in report, f"{line!r} not reported:\n{report}"
    assert "probe_typed" not in report and "probe_through_session" not in report, report
