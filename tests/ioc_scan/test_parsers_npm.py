"""package-lock.json / npm-shrinkwrap.json, lockfileVersion 1, 2 and 3."""

import json
from pathlib import Path

import pytest

from engine.jobs.ioc_scan.models import LockfileError
from engine.jobs.ioc_scan.parsers import parse, parser_for

FIXTURES = Path(__file__).parent / "fixtures" / "npm"


def triples(deps):
    return [(d.name, d.version, d.line) for d in deps]


def test_v3_reports_every_installed_package_on_its_node_modules_key_line():
    deps = parse("apps/web/package-lock.json", (FIXTURES / "package-lock-v3.json").read_text())
    assert triples(deps) == [
        ("@asyncapi/specs", "6.8.2", 24),
        ("@types/json-schema", "7.0.15", 33),
        ("@types/node", "20.11.5", 39),
        ("debug", "4.3.4", 49),
        ("ms", "2.1.2", 66),  # node_modules/debug/node_modules/ms: nested copy
        ("lodash-es", "4.17.21", 72),  # alias node_modules/lodash-es-alias reports the real name
        ("ms", "2.1.3", 79),
        ("undici-types", "5.26.5", 89),
    ]
    assert {d.ecosystem for d in deps} == {"npm"} and {d.kind for d in deps} == {"locked"}


def test_v3_skips_root_workspace_folders_and_links():
    names = {d.name for d in parse("package-lock.json", (FIXTURES / "package-lock-v3.json").read_text())}
    assert "storefront" not in names  # the root entry ""
    assert "ui-kit" not in names  # both the link and the workspace folder


def test_v2_uses_packages_and_does_not_double_count_the_legacy_dependencies_tree():
    deps = parse("package-lock.json", (FIXTURES / "package-lock-v2.json").read_text())
    assert triples(deps) == [
        ("@postman/aether-icons", "2.23.3", 15),
        ("ansi-styles", "4.3.0", 20),
        ("chalk", "4.1.2", 34),
        ("color-convert", "2.0.1", 49),
        ("color-name", "1.1.4", 60),
    ]


def test_v1_walks_nested_dependencies_and_resolves_npm_aliases():
    deps = parse("package-lock.json", (FIXTURES / "package-lock-v1.json").read_text())
    assert triples(deps) == [
        ("@asyncapi/specs", "6.10.1", 7),
        ("@types/json-schema", "7.0.15", 15),
        ("debug", "2.6.9", 20),
        ("ms", "2.0.0", 28),  # debug's own ms
        ("express", "4.17.1", 35),
        ("debug", "2.6.9", 44),  # express/debug
        ("ms", "2.0.0", 52),  # express/debug/ms, three levels down
        ("ms", "2.1.3", 61),
        ("string-width", "4.2.3", 66),  # "string-width-cjs": {"version": "npm:string-width@4.2.3"}
    ]


def test_shrinkwrap_is_parsed_like_a_package_lock():
    assert parser_for("tools/cli/npm-shrinkwrap.json").name == "npm-shrinkwrap"
    deps = parse("tools/cli/npm-shrinkwrap.json", (FIXTURES / "npm-shrinkwrap.json").read_text())
    assert triples(deps) == [("kill-port-process", "3.2.1", 14)]


def test_minified_lockfile_reports_line_one():
    text = json.dumps(json.loads((FIXTURES / "package-lock-v3.json").read_text()))
    deps = parse("package-lock.json", text)
    assert len(deps) == 8 and {d.line for d in deps} == {1}


def test_workspace_nested_node_modules_is_reported():
    text = json.dumps(
        {
            "lockfileVersion": 3,
            "packages": {
                "": {"name": "mono"},
                "packages/api": {"name": "api", "version": "1.0.0"},
                "packages/api/node_modules/@ctrl/tinycolor": {"version": "4.1.1"},
            },
        },
        indent=2,
    )
    key_line = text.split("\n").index('    "packages/api/node_modules/@ctrl/tinycolor": {') + 1
    assert triples(parse("package-lock.json", text)) == [("@ctrl/tinycolor", "4.1.1", key_line)]


def test_escaped_quote_in_a_value_does_not_shift_lines():
    # A value whose text looks like a key ("x": {) must not be taken for one.
    text = (
        '{\n  "lockfileVersion": 3,\n  "packages": {\n'
        '    "node_modules/a": {\n      "version": "1.0.0",\n      "description": "see \\"node_modules/b\\": {"\n    },\n'
        '    "node_modules/b": {\n      "version": "2.0.0"\n    }\n  }\n}\n'
    )
    assert triples(parse("package-lock.json", text)) == [("a", "1.0.0", 4), ("b", "2.0.0", 8)]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (
            '{\n  "lockfileVersion": 3,\n  "packages": {\n    "node_modules/a": {\n      "version": "1.0.0",\n',
            6,
        ),
        (
            '{\n  "lockfileVersion": 3,\n  "packages": {\n    "node_modules/a": {"version": 1.0.0}\n  }\n}\n',
            4,
        ),
        ("[1, 2, 3]\n", 1),
        ("", 1),
    ],
)
def test_malformed_lockfile_raises_with_path_and_line(text, line):
    with pytest.raises(LockfileError) as caught:
        parse("services/api/package-lock.json", text)
    assert caught.value.path == "services/api/package-lock.json"
    assert caught.value.line == line
    message = str(caught.value)
    assert message.startswith(f"services/api/package-lock.json:{line}: ") and "\n" not in message


def test_entry_of_the_wrong_type_is_an_error_naming_its_line():
    text = '{\n  "lockfileVersion": 3,\n  "packages": {\n    "node_modules/a": "1.0.0"\n  }\n}\n'
    with pytest.raises(LockfileError) as caught:
        parse("package-lock.json", text)
    assert "node_modules/a" in str(caught.value)
