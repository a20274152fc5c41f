"""requirements*.txt, poetry.lock, Pipfile.lock, uv.lock and pyproject.toml."""

from pathlib import Path

import pytest

from engine.jobs.ioc_scan.models import LockfileError
from engine.jobs.ioc_scan.parsers import parse, parser_for
from engine.jobs.ioc_scan.parsers.python import poetry_to_pep440

FIXTURES = Path(__file__).parent / "fixtures" / "python"


def rows(deps):
    return [(d.name, d.version, d.line, d.kind) for d in deps]


def test_requirements_pins_hashes_continuations_markers_and_extras():
    deps = parse("requirements.txt", (FIXTURES / "requirements.txt").read_text())
    assert rows(deps) == [
        ("certifi", "2024.2.2", 7, "locked"),  # continued over three lines with --hash options
        ("charset-normalizer", "3.3.2", 11, "locked"),
        ("Django", "4.2.11", 13, "locked"),  # trailing comment
        ("django-Rest_framework", "3.15.1", 14, "locked"),  # === arbitrary equality
        ("requests", "2.31.0", 15, "locked"),  # extras and an environment marker
        ("urllib3", "<3,>=1.21.1", 16, "declared"),
        ("idna", "~=3.6", 17, "declared"),
        ("typing_extensions", "", 18, "declared"),  # unpinned: any version
        ("numpy", "==1.26.*", 19, "declared"),  # a wildcard is a range, not a pin
    ]
    assert {d.ecosystem for d in deps} == {"pypi"}


def test_requirements_includes_are_notes_not_followed():
    deps = parse("requirements.txt", (FIXTURES / "requirements.txt").read_text())
    assert deps.notes == [
        "line 2: includes requirements file requirements-base.txt (not followed)",
        "line 3: includes constraints file constraints.txt (not followed)",
    ]
    dev = parse("requirements-dev.txt", (FIXTURES / "requirements-dev.txt").read_text())
    assert dev.notes == ["line 1: includes requirements file requirements.txt (not followed)"]
    assert rows(dev) == [("pytest", "8.1.1", 2, "locked"), ("ruff", "0.4.1", 3, "locked")]


def test_requirements_file_names_are_recognised_at_any_depth():
    for path in (
        "requirements.txt",
        "requirements-dev.txt",
        "services/api/requirements_prod.txt",
        "requirements.in.txt",
    ):
        assert parser_for(path).name == "requirements", path
    for path in ("dev-requirements.txt", "requirements.in", "docs/requirements.md"):
        assert parser_for(path) is None, path


def test_a_comment_ends_a_continuation_like_pip_does():
    text = "flask==3.0.3 \\\n    --hash=sha256:abc  # first hash \\\nwerkzeug==3.0.2\n"
    assert rows(parse("requirements.txt", text)) == [
        ("flask", "3.0.3", 1, "locked"),
        ("werkzeug", "3.0.2", 3, "locked"),
    ]


def test_invalid_requirement_line_raises_with_its_line():
    with pytest.raises(LockfileError) as caught:
        parse("svc/requirements.txt", "flask==3.0.3\nnot a (valid requirement\n")
    assert caught.value.line == 2 and str(caught.value).startswith("svc/requirements.txt:2: ")


def test_poetry_lock_skips_directory_sources():
    deps = parse("poetry.lock", (FIXTURES / "poetry.lock").read_text())
    assert rows(deps) == [
        ("certifi", "2024.2.2", 3, "locked"),
        ("requests", "2.31.0", 14, "locked"),
        ("urllib3", "2.2.1", 44, "locked"),  # shared-models (type = "directory") is the project's own code
    ]


def test_pipfile_lock_default_and_develop_without_git_entries():
    deps = parse("Pipfile.lock", (FIXTURES / "Pipfile.lock").read_text())
    assert rows(deps) == [
        ("flask", "3.0.3", 19, "locked"),
        ("werkzeug", "3.0.2", 32, "locked"),
        ("pytest", "8.1.1", 41, "locked"),
    ]


def test_uv_lock_skips_the_editable_project():
    deps = parse("uv.lock", (FIXTURES / "uv.lock").read_text())
    assert rows(deps) == [
        ("anyio", "4.3.0", 4, "locked"),
        ("idna", "3.7", 17, "locked"),
        ("sniffio", "1.3.1", 37, "locked"),
    ]


def test_pyproject_pep621_optional_and_dependency_groups_are_declared():
    deps = parse("pyproject.toml", (FIXTURES / "pep621" / "pyproject.toml").read_text())
    assert rows(deps) == [
        ("anyio", ">=4", 10, "declared"),
        ("httpx", "==0.27.0", 11, "declared"),
        ("PyYAML", "<7,>=6.0", 12, "declared"),
        ("Typing.Extensions", "", 13, "declared"),
        ("boto3", "~=1.34", 17, "declared"),
        ("pytest", ">=8", 19, "declared"),
        ("anyio", ">=4", 20, "declared"),  # the same string twice: each occurrence on its own line
        ("ruff", "==0.4.1", 24, "declared"),
        ("mypy", ">=1.10", 25, "declared"),
    ]


def test_pyproject_poetry_tables_translate_constraints_to_pep440():
    deps = parse("pyproject.toml", (FIXTURES / "poetry-project" / "pyproject.toml").read_text())
    assert rows(deps) == [
        ("requests", ">=2.31,<3", 9, "declared"),
        ("celery", ">=5.3.6,<5.4", 10, "declared"),
        ("pendulum", "==3.0.0", 11, "declared"),
        ("zope.interface", ">=6.0,<7.0", 12, "declared"),
        ("numpy", ">=1.26,<2", 13, "declared"),
        ("numpy", "==1.24.4", 13, "declared"),
        ("pytest", ">=0.8.1,<0.9", 20, "declared"),
        ("black", "", 21, "declared"),
        ("coverage", "==7.4.*", 24, "declared"),
    ]


@pytest.mark.parametrize(
    ("poetry", "pep440"),
    [
        ("^1.2.3", ">=1.2.3,<2"),
        ("^0.2.3", ">=0.2.3,<0.3"),
        ("^0.0.3", ">=0.0.3,<0.0.4"),
        ("^0.0", ">=0.0,<0.1"),
        ("^0", ">=0,<1"),
        ("~1.2.3", ">=1.2.3,<1.3"),
        ("~1.2", ">=1.2,<1.3"),
        ("~1", ">=1,<2"),
        ("~=1.4", "~=1.4"),
        ("1.2.*", "==1.2.*"),
        ("2.0.0", "==2.0.0"),
        ("=2.0.0", "==2.0.0"),
        (">= 1.2, < 1.5", ">=1.2,<1.5"),
        (">=1.2 <1.5", ">=1.2,<1.5"),
        ("*", ""),
        ("^1.0 || ^2.0", ">=1.0,<2 || >=2.0,<3"),
    ],
)
def test_poetry_constraint_translation(poetry, pep440):
    assert poetry_to_pep440(poetry) == pep440


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("poetry.lock", '[[package]]\nname = "a"\nversion = "1.0\n', 3),
        ("uv.lock", 'version = 1\n[[package]]\nversion = "1.0"\n', 2),
        ("Pipfile.lock", '{"default": {"flask": "==3.0.3"}}', 1),
        ("pyproject.toml", '[project]\ndependencies = ["flask >= = 3"]\n', 2),
    ],
)
def test_malformed_python_files_raise_with_line(name, text, line):
    with pytest.raises(LockfileError) as caught:
        parse(f"svc/{name}", text)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"svc/{name}:{line}: ")
