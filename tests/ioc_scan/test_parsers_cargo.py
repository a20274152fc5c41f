"""Cargo.lock."""

from pathlib import Path

import pytest

from engine.jobs.ioc_scan.models import LockfileError
from engine.jobs.ioc_scan.parsers import parse

FIXTURES = Path(__file__).parent / "fixtures" / "cargo"


def test_cargo_lock_reports_sourced_packages_on_their_package_line():
    deps = parse("Cargo.lock", (FIXTURES / "Cargo.lock").read_text())
    assert [(d.name, d.version, d.line) for d in deps] == [
        ("proc-macro2", "1.0.81", 13),
        ("serde", "1.0.198", 22),
        ("tokio", "1.37.0", 28),  # git source
        ("unicode-ident", "1.0.12", 36),
    ]
    assert "edge-proxy" not in {d.name for d in deps}  # the workspace crate (no source)
    assert {(d.ecosystem, d.kind) for d in deps} == {("cargo", "locked")}


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('version = 3\n\n[[package]]\nname = "serde"\nversion = 1.0.198"\n', 5),
        ('version = 3\n\n[[package]]\nname = "serde"\nsource = "registry+https://x"\n', 3),
    ],
)
def test_malformed_cargo_lock_raises_with_line(text, line):
    with pytest.raises(LockfileError) as caught:
        parse("Cargo.lock", text)
    assert caught.value.line == line
