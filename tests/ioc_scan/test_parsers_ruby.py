"""Gemfile.lock."""

from pathlib import Path

import pytest

from engine.jobs.ioc_scan.models import LockfileError
from engine.jobs.ioc_scan.parsers import parse, parser_for

FIXTURES = Path(__file__).parent / "fixtures" / "ruby"


def test_gemfile_lock_specs_of_gem_and_git_sources():
    deps = parse("Gemfile.lock", (FIXTURES / "Gemfile.lock").read_text())
    assert [(d.name, d.version, d.line) for d in deps] == [
        ("feature_flags", "0.9.2", 6),  # GIT source
        ("activesupport", "7.1.3.2", 18),
        ("base64", "0.2.0", 22),
        ("concurrent-ruby", "1.2.3", 23),
        ("i18n", "1.14.4", 24),
        ("nokogiri", "1.16.4", 26),  # platform suffix dropped
        ("nokogiri", "1.16.4", 28),
        ("racc", "1.7.3", 30),
        ("rails-html-sanitizer", "1.6.0.rc1", 31),  # a RubyGems prerelease keeps its dots
    ]
    assert "billing" not in {d.name for d in deps}  # PATH source: the project's own engine
    assert {(d.ecosystem, d.kind) for d in deps} == {("rubygems", "locked")}


def test_gems_locked_is_the_same_format():
    assert parser_for("gems.locked").name == "gems.locked"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("GEM\n  remote: https://rubygems.org/\n  specs:\n    rack 3.0.9\n", 4),
        ("    rack (3.0.9)\n", 1),
        ("", 1),
    ],
)
def test_malformed_gemfile_lock_raises(text, line):
    with pytest.raises(LockfileError) as caught:
        parse("Gemfile.lock", text)
    assert caught.value.line == line
