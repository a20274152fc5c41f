"""bun.lock (text, JSONC)."""

from pathlib import Path

import pytest

from engine.jobs.ioc_scan.models import LockfileError
from engine.jobs.ioc_scan.parsers import parse, parser_for

FIXTURES = Path(__file__).parent / "fixtures" / "bun"


def triples(deps):
    return [(d.name, d.version, d.line) for d in deps]


def test_bun_lock_with_trailing_commas_comments_nested_paths_and_aliases():
    deps = parse("bun.lock", (FIXTURES / "bun.lock").read_text())
    assert triples(deps) == [
        ("@asyncapi/specs", "6.9.1", 22),
        ("@types/bun", "1.1.6", 26),
        ("@types/json-schema", "7.0.15", 28),
        ("hono", "4.4.13", 31),  # after a // comment line
        ("string-width", "4.2.3", 33),  # "string-width-cjs" alias: real name from the array
        ("wrap-ansi", "7.0.0", 35),
        ("string-width", "5.1.2", 37),  # "wrap-ansi/string-width": a nested copy
    ]


def test_block_comment_keeps_line_numbers():
    text = '{\n  "lockfileVersion": 1,\n  /* generated\n     by hand */\n  "packages": {\n    "ms": ["ms@2.1.3", "", {}, "sha512-x"],\n  },\n}\n'
    assert triples(parse("bun.lock", text)) == [("ms", "2.1.3", 6)]


def test_comment_markers_and_commas_inside_strings_are_left_alone():
    text = (
        "{\n"
        '  "lockfileVersion": 1, // v1\n'
        '  "packages": {\n'
        '    "left-pad": ["left-pad@1.3.0", "https://npm.acme.io//registry/", { "bin": { "x": "a, ]" } }, "sha512-y"],\n'
        '    "ms": ["ms@2.1.3", "", { "os": "/* any */" }, "sha512-x",],\n'
        "  },\n"
        "}\n"
    )
    assert triples(parse("bun.lock", text)) == [("left-pad", "1.3.0", 4), ("ms", "2.1.3", 5)]


def test_binary_lockb_is_not_claimed():
    assert parser_for("bun.lockb") is None


@pytest.mark.parametrize(
    "text",
    [
        '{\n  "lockfileVersion": 1,\n  "packages": {\n    "ms": ["ms@2.1.3", "", {}\n  }\n}\n',
        '{\n  "packages": {}\n}\n',
        '{\n  "lockfileVersion": 1,\n  "packages": {\n    "ms": "ms@2.1.3",\n  },\n}\n',
    ],
)
def test_malformed_bun_lock_raises(text):
    with pytest.raises(LockfileError) as caught:
        parse("apps/edge/bun.lock", text)
    assert str(caught.value).startswith("apps/edge/bun.lock")
