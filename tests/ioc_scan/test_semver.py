"""npm range satisfaction, checked against node-semver's documented desugaring."""

import pytest

from engine.jobs.ioc_scan.semver import InvalidRange, Version, parse_range, satisfies, valid_range

# (version, range, satisfies?) — each row is a rule from node-semver's README.
CASES = [
    # carets: the first non-zero part is fixed
    ("1.2.3", "^1.2.3", True),
    ("1.9.9", "^1.2.3", True),
    ("2.0.0", "^1.2.3", False),
    ("1.2.2", "^1.2.3", False),
    ("0.2.5", "^0.2.3", True),
    ("0.3.0", "^0.2.3", False),
    ("0.0.3", "^0.0.3", True),
    ("0.0.4", "^0.0.3", False),
    ("0.0.9", "^0.0", True),
    ("0.1.0", "^0.0", False),
    ("0.9.0", "^0.x", True),
    ("1.0.0", "^0.x", False),
    ("1.5.0", "^1.2.x", True),
    ("0.0.7", "^0.0.x", True),
    ("0.1.0", "^0.0.x", False),
    # tildes: patch-level changes (minor if only the major is given)
    ("1.2.9", "~1.2.3", True),
    ("1.3.0", "~1.2.3", False),
    ("1.2.0", "~1.2", True),
    ("1.3.0", "~1.2", False),
    ("1.9.0", "~1", True),
    ("2.0.0", "~1", False),
    ("0.2.9", "~0.2.3", True),
    ("1.2.5", "~>1.2.3", True),
    # x-ranges and partial versions
    ("1.9.0", "1.x", True),
    ("2.0.0", "1.x", False),
    ("1.2.7", "1.2.*", True),
    ("1.3.0", "1.2.X", False),
    ("1.4.2", "1", True),
    ("3.1.4", "*", True),
    ("3.1.4", "", True),
    ("3.1.4", "x", True),
    # hyphen ranges: a partial upper bound extends to its end
    ("1.2.3", "1.2.3 - 2.3.4", True),
    ("2.3.4", "1.2.3 - 2.3.4", True),
    ("2.3.5", "1.2.3 - 2.3.4", False),
    ("1.2.0", "1.2 - 2.3.4", True),
    ("2.3.9", "1.2.3 - 2.3", True),
    ("2.4.0", "1.2.3 - 2.3", False),
    ("2.9.9", "1.2.3 - 2", True),
    ("3.0.0", "1.2.3 - 2", False),
    # primitive comparators, partials under operators
    ("1.2.0", "<1.2", False),
    ("1.1.9", "<1.2", True),
    ("1.2.9", "<=1.2", True),
    ("1.3.0", "<=1.2", False),
    ("1.3.0", ">1.2", True),
    ("1.2.9", ">1.2", False),
    ("2.0.0", ">1", True),
    ("1.9.9", ">1", False),
    ("1.2.0", ">=1.2", True),
    ("1.0.0", ">= 1.0.0", True),
    ("5.4.0", ">=5.3.0 <5.5.0", True),
    ("5.5.0", ">=5.3.0 <5.5.0", False),
    ("1.2.3", "=1.2.3", True),
    ("1.2.3", "v1.2.3", True),
    ("1.2.4", "1.2.3", False),
    ("0.0.1", "<*", False),
    # alternatives
    ("3.1.0", "1.x || >=3.0.0 <4", True),
    ("2.5.0", "1.x || >=3.0.0 <4", False),
    ("2.0.1", "1.x || 2.x", True),
    # prereleases: only when the range names a prerelease of the same major.minor.patch
    ("1.2.4-beta.1", "^1.2.3", False),
    ("1.2.3-beta.3", ">=1.2.3-beta.2 <1.3.0", True),
    ("1.2.4-beta.3", ">=1.2.3-beta.2 <1.3.0", False),
    ("1.2.3-alpha", ">=1.2.3-beta.2", False),
    ("2.0.0-rc.1", "<2.0.0", False),
    ("1.2.3-rc.1", "~1.2.3-rc.0", True),
    ("1.2.3+build.5", "1.2.3", True),
    # not ranges: never satisfied
    ("1.0.0", "latest", False),
    ("1.0.0", "github:user/repo", False),
    ("not-a-version", "*", False),
]


@pytest.mark.parametrize(("version", "range_text", "expected"), CASES)
def test_satisfies_follows_node_semver(version, range_text, expected):
    assert satisfies(version, range_text) is expected


def test_include_prerelease_lifts_the_prerelease_rule():
    assert not satisfies("1.3.0-beta.1", "^1.2.3")
    assert satisfies("1.3.0-beta.1", "^1.2.3", include_prerelease=True)


def test_invalid_ranges_are_rejected_by_parse_range():
    for text in ("latest", "next", "^", "1.2.3.4", ">=abc", "file:../x"):
        assert not valid_range(text)
        with pytest.raises(InvalidRange):
            parse_range(text)


def test_version_precedence_follows_semver():
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
    ]
    parsed = [Version.parse(v) for v in ordered]
    assert sorted(parsed) == parsed
    assert [str(v) for v in parsed] == ordered
