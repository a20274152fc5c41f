"""The parser registry, and properties every format shares: CRLF, BOM, bytes, errors, size."""

import json
from pathlib import Path

import pytest

from engine.errors import InputError
from engine.jobs.ioc_scan.models import Dependency, LockfileError
from engine.jobs.ioc_scan.parsers import SUPPORTED_FILE_NAMES, parse, parser_for

FIXTURES = Path(__file__).parent / "fixtures"

# Every fixture and the file name it is scanned under.
ALL_FIXTURES = [
    ("npm/package-lock-v1.json", "package-lock.json"),
    ("npm/package-lock-v2.json", "package-lock.json"),
    ("npm/package-lock-v3.json", "package-lock.json"),
    ("npm/npm-shrinkwrap.json", "npm-shrinkwrap.json"),
    ("yarn-classic/yarn.lock", "yarn.lock"),
    ("yarn-berry/yarn.lock", "yarn.lock"),
    ("pnpm/v5/pnpm-lock.yaml", "pnpm-lock.yaml"),
    ("pnpm/v6/pnpm-lock.yaml", "pnpm-lock.yaml"),
    ("pnpm/v9/pnpm-lock.yaml", "pnpm-lock.yaml"),
    ("bun/bun.lock", "bun.lock"),
    ("package_json/package.json", "package.json"),
    ("python/requirements.txt", "requirements.txt"),
    ("python/poetry.lock", "poetry.lock"),
    ("python/Pipfile.lock", "Pipfile.lock"),
    ("python/uv.lock", "uv.lock"),
    ("python/pep621/pyproject.toml", "pyproject.toml"),
    ("python/poetry-project/pyproject.toml", "pyproject.toml"),
    ("go/go.mod", "go.mod"),
    ("go/go.sum", "go.sum"),
    ("cargo/Cargo.lock", "Cargo.lock"),
    ("ruby/Gemfile.lock", "Gemfile.lock"),
    ("composer/composer.lock", "composer.lock"),
]


@pytest.mark.parametrize(
    ("path", "parser_name", "lockfile"),
    [
        ("package-lock.json", "package-lock", True),
        ("apps/web/package-lock.json", "package-lock", True),
        ("deep/nested/dir/yarn.lock", "yarn.lock", True),
        ("pnpm-lock.yaml", "pnpm-lock", True),
        ("bun.lock", "bun.lock", True),
        ("packages/ui/package.json", "package.json", False),
        ("services/api/requirements-prod.txt", "requirements", False),
        ("poetry.lock", "poetry.lock", True),
        ("Pipfile.lock", "Pipfile.lock", True),
        ("uv.lock", "uv.lock", True),
        ("pyproject.toml", "pyproject.toml", False),
        ("cmd/go.mod", "go.mod", False),
        ("go.sum", "go.sum", True),
        ("crates/x/Cargo.lock", "Cargo.lock", True),
        ("Gemfile.lock", "Gemfile.lock", True),
        ("composer.lock", "composer.lock", True),
    ],
)
def test_parser_for_selects_by_file_name_at_any_depth(path, parser_name, lockfile):
    parser = parser_for(path)
    assert parser is not None and parser.name == parser_name and parser.lockfile is lockfile


@pytest.mark.parametrize(
    "path",
    [
        "README.md",
        "package-lock.json.bak",
        "Package.json",
        "bun.lockb",
        "Cargo.toml",
        "Gemfile",
        "pipfile.lock",
        "src/",
    ],
)
def test_unsupported_names_have_no_parser(path):
    assert parser_for(path) is None


def test_parse_of_an_unsupported_name_is_an_input_error():
    with pytest.raises(LockfileError) as caught:
        parse("notes/README.md", "")
    assert isinstance(caught.value, InputError) and "notes/README.md" in str(caught.value)


def test_supported_names_are_listed_for_discovery():
    assert "package-lock.json" in SUPPORTED_FILE_NAMES and "requirements*.txt" in SUPPORTED_FILE_NAMES


@pytest.mark.parametrize(("fixture", "name"), ALL_FIXTURES)
def test_crlf_and_bom_files_parse_exactly_like_lf_files(fixture, name):
    text = (FIXTURES / fixture).read_text()
    expected = parse(name, text)
    assert expected, f"{fixture} should yield dependencies"
    crlf = text.replace("\n", "\r\n")
    assert parse(name, crlf) == expected
    assert parse(name, "\ufeff" + crlf) == expected
    assert parse(name, ("\ufeff" + text).encode()) == expected  # bytes with a UTF-8 BOM


@pytest.mark.parametrize(("fixture", "name"), ALL_FIXTURES)
def test_every_reported_line_holds_the_package_name(fixture, name):
    # The line convention, checked from the other side: each reported line mentions the package
    # (or, for toml locks, is the [[package]] header right above its name; composer: its "name").
    lines = (FIXTURES / fixture).read_text().split("\n")
    for dep in parse(name, (FIXTURES / fixture).read_text()):
        assert isinstance(dep, Dependency) and 1 <= dep.line <= len(lines)
        at = lines[dep.line - 1]
        if at.strip() == "[[package]]":
            at = lines[dep.line]
        short = dep.name.split("/")[-1]
        assert short.lower() in at.lower() or short.lower().replace("-", "_") in at.lower(), (dep, at)


def test_undecodable_bytes_are_a_lockfile_error():
    with pytest.raises(LockfileError) as caught:
        parse("package-lock.json", b'{"x": "\xff\xfe"}')
    assert "UTF-8" in str(caught.value)


def test_deeply_nested_garbage_is_a_lockfile_error_not_a_crash():
    with pytest.raises(LockfileError):
        parse("package-lock.json", "[" * 200_000 + "]" * 200_000)


def _big_lockfile(target_bytes: int) -> tuple[str, dict[str, tuple[str, str]]]:
    """A lockfileVersion 3 file of about ``target_bytes``, shaped like npm writes it, with planted entries."""
    planted = {
        "node_modules/@asyncapi/specs": ("@asyncapi/specs", "6.8.2"),
        "node_modules/left-pad-1234/node_modules/@ctrl/tinycolor": ("@ctrl/tinycolor", "4.1.1"),
        "node_modules/string-width-cjs": ("string-width", "4.2.3"),
    }
    packages: dict[str, dict] = {
        "": {"name": "huge-monorepo", "version": "1.0.0", "dependencies": {"@asyncapi/specs": "^6.8.0"}}
    }
    index = 0
    size = 0
    while size < target_bytes:
        name = f"@scope{index % 40}/pkg-{index}" if index % 3 == 0 else f"pkg-{index}"
        path = f"node_modules/{name}" if index % 4 else f"node_modules/parent-{index}/node_modules/{name}"
        entry = {
            "version": f"{index % 9}.{index % 13}.{index % 17}",
            "resolved": f"https://registry.npmjs.org/{name}/-/{name.split('/')[-1]}-1.0.0.tgz",
            "integrity": "sha512-" + "Qm9vYmFy" * 11 + "==",
            "license": "MIT",
            "dependencies": {"ms": "^2.1.3", "debug": "^4.3.4"},
            "engines": {"node": ">=14"},
        }
        packages[path] = entry
        size += 360
        index += 1
        if index == 5000:
            packages["node_modules/@asyncapi/specs"] = {"version": "6.8.2", "license": "Apache-2.0"}
        if index == 40000:
            packages["node_modules/left-pad-1234/node_modules/@ctrl/tinycolor"] = {"version": "4.1.1"}
            packages["node_modules/string-width-cjs"] = {"name": "string-width", "version": "4.2.3"}
    text = json.dumps(
        {
            "name": "huge-monorepo",
            "version": "1.0.0",
            "lockfileVersion": 3,
            "requires": True,
            "packages": packages,
        },
        indent=2,
    )
    return text, planted


def test_a_20_mb_package_lock_parses_and_finds_the_planted_entries(tmp_path):
    text, planted = _big_lockfile(20_000_000)
    path = tmp_path / "package-lock.json"
    path.write_text(text)
    assert path.stat().st_size >= 20_000_000
    deps = parse("package-lock.json", path.read_text())
    by_entry = {(d.name, d.version): d.line for d in deps}
    lines = text.split("\n")
    for key, (name, version) in planted.items():
        expected_line = lines.index(f'    "{key}": {{') + 1
        assert by_entry[(name, version)] == expected_line
    assert len(deps) == sum(1 for key in json.loads(text)["packages"] if "node_modules/" in key)
