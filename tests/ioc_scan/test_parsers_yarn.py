"""yarn.lock: classic v1 and berry (v2+)."""

from pathlib import Path

import pytest

from engine.jobs.ioc_scan.models import LockfileError
from engine.jobs.ioc_scan.parsers import parse

FIXTURES = Path(__file__).parent / "fixtures"


def triples(deps):
    return [(d.name, d.version, d.line) for d in deps]


def test_classic_reports_each_entry_on_its_header_line():
    deps = parse("yarn.lock", (FIXTURES / "yarn-classic" / "yarn.lock").read_text())
    assert triples(deps) == [
        ("@babel/code-frame", "7.22.13", 5),  # "a@^7.0.0", "a@^7.22.13": — two descriptors, one entry
        ("@babel/highlight", "7.22.20", 13),
        ("@zapier/secret-scrubber", "1.1.5", 18),
        ("chalk", "2.4.2", 23),
        ("lodash", "4.17.21", 32),  # unquoted multi-descriptor header
        ("string-width", "4.2.3", 37),  # "string-width-cjs@npm:string-width@^4.2.0", ... alias
    ]
    assert {(d.ecosystem, d.kind) for d in deps} == {("npm", "locked")}


def test_berry_uses_resolution_and_skips_metadata_workspaces_and_patches():
    deps = parse("yarn.lock", (FIXTURES / "yarn-berry" / "yarn.lock").read_text())
    assert triples(deps) == [
        ("@asyncapi/specs", "6.8.3", 8),
        ("@types/json-schema", "7.0.15", 17),
        (
            "resolve",
            "1.22.8",
            34,
        ),  # the npm: entry; its patch: twin is not a second install of a registry version
        ("string-width", "4.2.3", 56),  # alias key, real name from resolution: "string-width@npm:4.2.3"
    ]


def test_berry_long_key_written_with_explicit_key_syntax():
    descriptors = ", ".join(f"lodash@npm:^4.17.{n}" for n in range(60))
    text = (
        "__metadata:\n  version: 8\n  cacheKey: 10c0\n\n"
        f'? "{descriptors}"\n'
        ":\n"
        "  version: 4.17.21\n"
        '  resolution: "lodash@npm:4.17.21"\n'
        "  languageName: node\n  linkType: hard\n"
    )
    assert triples(parse("yarn.lock", text)) == [("lodash", "4.17.21", 5)]


def test_classic_scoped_alias_to_a_scoped_package():
    text = (
        "# yarn lockfile v1\n\n\n"
        '"my-tinycolor@npm:@ctrl/tinycolor@^4.1.0":\n'
        '  version "4.1.1"\n'
        '  resolved "https://registry.yarnpkg.com/@ctrl/tinycolor/-/tinycolor-4.1.1.tgz"\n'
    )
    assert triples(parse("yarn.lock", text)) == [("@ctrl/tinycolor", "4.1.1", 4)]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('# yarn lockfile v1\n\nlodash@^4.17.21\n  version "4.17.21"\n', 3),  # header without ':'
        ('  version "1.0.0"\n', 1),  # fields before any entry
        ('# yarn lockfile v1\n\nlodash@^4.17.21:\n  resolved "https://x"\n', 3),  # entry without version
    ],
)
def test_malformed_yarn_lock_raises_with_line(text, line):
    with pytest.raises(LockfileError) as caught:
        parse("web/yarn.lock", text)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"web/yarn.lock:{line}: ")
