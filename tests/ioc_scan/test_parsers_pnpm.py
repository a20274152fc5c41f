"""pnpm-lock.yaml v5, v6 and v9."""

from pathlib import Path

import pytest

from engine.jobs.ioc_scan.models import LockfileError
from engine.jobs.ioc_scan.parsers import parse

FIXTURES = Path(__file__).parent / "fixtures" / "pnpm"


def triples(deps):
    return [(d.name, d.version, d.line) for d in deps]


def test_v5_slash_keys_with_underscore_peer_suffixes_and_tarball_entries():
    deps = parse("pnpm-lock.yaml", (FIXTURES / "v5" / "pnpm-lock.yaml").read_text())
    assert triples(deps) == [
        ("@ensdomains/content-hash", "3.0.1", 20),
        ("js-tokens", "4.0.0", 24),
        ("loose-envify", "1.4.0", 28),
        ("react-dom", "17.0.2", 35),  # /react-dom/17.0.2_react@17.0.2
        ("react", "17.0.2", 46),
        ("left-pad", "1.3.0", 54),  # github.com/... key: name and version fields
        ("tslib", "2.6.2", 60),
    ]


def test_v6_at_keys_with_parenthesised_peers():
    deps = parse("pnpm-lock.yaml", (FIXTURES / "v6" / "pnpm-lock.yaml").read_text())
    assert triples(deps) == [
        ("@ensdomains/content-hash", "3.0.1", 20),
        ("js-tokens", "4.0.0", 24),
        ("loose-envify", "1.4.0", 28),
        ("react-dom", "18.2.0", 35),  # /react-dom@18.2.0(react@18.2.0)
        ("react", "18.2.0", 45),
        ("scheduler", "0.23.0", 52),
        ("tinycolor2", "1.6.0", 58),  # the target of the tiny-alias importer entry
    ]


def test_v9_reports_packages_once_not_again_for_snapshots():
    deps = parse("pnpm-lock.yaml", (FIXTURES / "v9" / "pnpm-lock.yaml").read_text())
    assert triples(deps) == [
        ("@ensdomains/content-hash", "3.0.1", 33),
        ("js-tokens", "4.0.0", 36),
        ("loose-envify", "1.4.0", 39),
        ("react-dom", "18.2.0", 43),
        ("react", "18.2.0", 48),
        ("scheduler", "0.23.2", 52),
        ("string-width", "4.2.3", 55),
        ("typescript", "5.4.5", 59),
    ]


def test_v9_snapshot_without_a_packages_entry_is_still_reported():
    text = (
        "lockfileVersion: '9.0'\n\n"
        "packages:\n\n"
        "  react@18.2.0:\n    resolution: {integrity: sha512-abc}\n\n"
        "snapshots:\n\n"
        "  react@18.2.0: {}\n\n"
        "  react-dom@18.2.0(react@18.2.0):\n    dependencies:\n      react: 18.2.0\n"
    )
    assert triples(parse("pnpm-lock.yaml", text)) == [("react", "18.2.0", 5), ("react-dom", "18.2.0", 12)]


def test_v6_same_version_with_two_peer_sets_is_two_entries():
    text = (
        "lockfileVersion: '6.0'\n\npackages:\n\n"
        "  /styled-jsx@5.1.1(react@17.0.2):\n    resolution: {integrity: sha512-a}\n\n"
        "  /styled-jsx@5.1.1(react@18.2.0):\n    resolution: {integrity: sha512-a}\n"
    )
    assert triples(parse("pnpm-lock.yaml", text)) == [("styled-jsx", "5.1.1", 5), ("styled-jsx", "5.1.1", 8)]


def test_local_file_and_link_entries_are_not_reported():
    text = (
        "lockfileVersion: '9.0'\n\npackages:\n\n"
        "  file:../vendored/ui:\n    resolution: {directory: ../vendored/ui, type: directory}\n    name: ui\n    version: 0.0.1\n\n"
        "  ms@2.1.3:\n    resolution: {integrity: sha512-a}\n"
    )
    assert triples(parse("pnpm-lock.yaml", text)) == [("ms", "2.1.3", 10)]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("lockfileVersion: '9.0'\npackages:\n  ms@2.1.3: {resolution: [\n", 4),
        ("lockfileVersion: '9.0'\npackages:\n  - ms@2.1.3\n", 3),
        ("just: a yaml file\n", 1),
    ],
)
def test_malformed_pnpm_lock_raises_with_line(text, line):
    with pytest.raises(LockfileError) as caught:
        parse("pnpm-lock.yaml", text)
    assert caught.value.line == line
