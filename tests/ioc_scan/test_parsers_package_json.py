"""package.json: declared ranges."""

from pathlib import Path

import pytest

from engine.jobs.ioc_scan.models import LockfileError
from engine.jobs.ioc_scan.parsers import parse, parser_for

FIXTURES = Path(__file__).parent / "fixtures" / "package_json"


def test_declared_ranges_from_every_dependency_section_on_their_lines():
    deps = parse("package.json", (FIXTURES / "package.json").read_text())
    assert [(d.name, d.version, d.line) for d in deps] == [
        ("@asyncapi/specs", "^6.8.0", 10),
        ("@ctrl/deluge", "~7.2.0", 11),
        ("lodash-es", "^4.17.21", 12),  # "lodash-es-alias": "npm:lodash-es@^4.17.21"
        ("next", "14.2.3", 13),
        ("posthog-js", "latest", 17),  # a dist-tag is kept (it never matches a range)
        ("typescript", ">=5.3.0 <5.5.0", 20),
        ("vitest", "1.x || 2.x", 21),
        ("fsevents", "^2.3.3", 24),
        ("react", "^18.0.0", 27),
    ]
    assert {(d.ecosystem, d.kind) for d in deps} == {("npm", "declared")}


def test_workspace_file_and_git_specs_are_skipped():
    names = {d.name for d in parse("package.json", (FIXTURES / "package.json").read_text())}
    assert not names & {"ui-kit", "local-utils", "forked-lib"}


def test_package_json_is_a_manifest_not_a_lockfile():
    parser = parser_for("packages/ui/package.json")
    assert parser is not None and parser.lockfile is False


@pytest.mark.parametrize(
    "text",
    ['{"dependencies": ["lodash"]}', '{"dependencies": {"lodash": 4}}', '{"name": "x",', "[]"],
)
def test_malformed_package_json_raises(text):
    with pytest.raises(LockfileError):
        parse("package.json", text)
