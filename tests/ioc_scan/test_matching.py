"""Matching dependencies against IOCs: locked vs declared, sources, dedupe."""

from pathlib import Path

from engine.jobs.ioc_scan.iocs import IOCIndex, load_iocs, parse_iocs
from engine.jobs.ioc_scan.matching import match_dependencies, range_admits
from engine.jobs.ioc_scan.models import IOC, Dependency, IOCMatch
from engine.jobs.ioc_scan.parsers import parse

REPO = Path(__file__).resolve().parents[2]
SHAI_HULUD = REPO / "sample_configs" / "iocs" / "shai-hulud-2-packages.csv"
FIXTURES = Path(__file__).parent / "fixtures"


def index_of(*iocs: IOC) -> IOCIndex:
    return IOCIndex.from_iocs(iocs)


def test_locked_version_in_the_set_matches_and_names_its_source():
    index = index_of(IOC("npm", "@ctrl/tinycolor", frozenset({"4.1.1", "4.1.2"}), "list.csv"))
    deps = [
        Dependency("@ctrl/tinycolor", "4.1.2", 40, "npm", "locked"),
        Dependency("@ctrl/tinycolor", "4.1.0", 50, "npm", "locked"),
    ]
    assert match_dependencies(deps, index, "acme/web", "package-lock.json") == [
        IOCMatch("acme/web", "package-lock.json", 40, "@ctrl/tinycolor", "4.1.2", "npm", "list.csv", "locked")
    ]


def test_star_matches_every_locked_version():
    index = index_of(IOC("npm", "flatmap-stream", None, "advisory.json"))
    deps = [Dependency("flatmap-stream", "0.1.1", 3, "npm"), Dependency("flatmap-stream", "9.9.9", 9, "npm")]
    assert [m.version for m in match_dependencies(deps, index, "r", "yarn.lock")] == ["0.1.1", "9.9.9"]


def test_every_alternative_of_the_real_csv_matches_a_locked_dependency():
    # The earlier scanner's failure: "= a || = b" compared as one string never matched.
    index = load_iocs([SHAI_HULUD])
    deps = [
        Dependency(ioc.name, version, n, "npm")
        for n, ioc in enumerate(index, 1)
        for version in sorted(ioc.versions)
    ]
    matches = match_dependencies(deps, index, "acme/all", "package-lock.json")
    assert len(matches) == len(deps) > 795
    assert {(m.package_name, m.version) for m in matches} == {(d.name, d.version) for d in deps}


def test_npm_names_compare_case_insensitively_pypi_names_per_pep503():
    index = index_of(
        IOC("npm", "@Scope/Pkg", frozenset({"1.0.0"}), "a.txt"),
        IOC("pypi", "Django_Rest.Framework", frozenset({"3.15.1"}), "a.txt"),
    )
    deps = [
        Dependency("@scope/pkg", "1.0.0", 1, "npm"),
        Dependency("django-rest-framework", "3.15.1", 2, "pypi"),
        Dependency("django-rest-framework", "3.15.1", 2, "npm"),  # other ecosystem: no match
    ]
    assert [(m.package_name, m.ecosystem) for m in match_dependencies(deps, index, "r", "f")] == [
        ("@scope/pkg", "npm"),
        ("django-rest-framework", "pypi"),
    ]


def test_versions_compare_in_each_registrys_canonical_form():
    index = index_of(
        IOC("pypi", "ctx", frozenset({"0.2"}), "x"),
        IOC("go", "github.com/acme/evil", frozenset({"0.1.0"}), "x"),
        IOC("packagist", "acme/payments", frozenset({"1.0.0"}), "x"),
    )
    deps = [
        Dependency("ctx", "0.2.0", 1, "pypi"),
        Dependency("github.com/acme/evil", "v0.1.0", 2, "go"),
        Dependency("acme/payments", "v1.0.0", 3, "packagist"),
    ]
    assert [m.line_number for m in match_dependencies(deps, index, "r", "f")] == [1, 2, 3]


def test_declared_npm_range_reports_each_compromised_version_it_admits():
    index = index_of(
        IOC("npm", "@asyncapi/specs", frozenset({"6.8.2", "6.8.3", "6.9.1", "6.10.1"}), "shai.csv")
    )
    deps = [
        Dependency("@asyncapi/specs", "~6.8.0", 10, "npm", "declared"),
        Dependency("@asyncapi/specs", "^5.0.0", 11, "npm", "declared"),
        Dependency("@asyncapi/specs", "latest", 12, "npm", "declared"),
    ]
    matches = match_dependencies(deps, index, "acme/api", "package.json")
    assert [(m.line_number, m.version, m.kind) for m in matches] == [
        (10, "6.8.2", "declared"),
        (10, "6.8.3", "declared"),
    ]


def test_declared_range_against_star_reports_star():
    index = index_of(IOC("npm", "flatmap-stream", None, "advisory.json"))
    (match,) = match_dependencies(
        [Dependency("flatmap-stream", "^0.1.0", 7, "npm", "declared")], index, "r", "package.json"
    )
    assert (match.version, match.kind) == ("*", "declared")


def test_declared_pypi_specifiers_use_pep440():
    index = index_of(IOC("pypi", "ultralytics", frozenset({"8.3.41", "8.3.42"}), "x.csv"))
    deps = [
        Dependency("ultralytics", ">=8.3,<8.4", 1, "pypi", "declared"),
        Dependency("ultralytics", "~=8.2.0", 2, "pypi", "declared"),
        Dependency("ultralytics", "", 3, "pypi", "declared"),  # unpinned
        Dependency("ultralytics", ">=8.0,<8.3 || >=8.3.42,<9", 4, "pypi", "declared"),  # poetry "||"
    ]
    assert [(m.line_number, m.version) for m in match_dependencies(deps, index, "r", "pyproject.toml")] == [
        (1, "8.3.41"),
        (1, "8.3.42"),
        (3, "8.3.41"),
        (3, "8.3.42"),
        (4, "8.3.42"),
    ]


def test_range_admits_is_false_for_invalid_ranges():
    assert not range_admits("npm", "github:acme/x", "1.0.0")
    assert not range_admits("pypi", "not a specifier", "1.0.0")
    assert range_admits("pypi", "==1.0.*", "1.0.5")
    assert not range_admits("pypi", ">=1.0", "2.0.0rc1")  # PEP 440: prereleases only when asked for


def test_two_sources_listing_the_same_package_give_one_match_each():
    index = IOCIndex.from_iocs(
        parse_iocs("Package,Version\n@ctrl/tinycolor,= 4.1.1\n", "csv", source="wiz.csv")
        + parse_iocs("@ctrl/tinycolor@4.1.1\n", "text", source="team.txt")
    )
    matches = match_dependencies([Dependency("@ctrl/tinycolor", "4.1.1", 5, "npm")], index, "r", "yarn.lock")
    assert sorted(m.ioc_source for m in matches) == ["team.txt", "wiz.csv"]


def test_identical_findings_are_reported_once():
    index = index_of(IOC("npm", "ms", frozenset({"2.1.3"}), "x"))
    dep = Dependency("ms", "2.1.3", 4, "npm")
    assert len(match_dependencies([dep, dep], index, "r", "bun.lock")) == 1


def test_end_to_end_on_fixtures_with_the_real_list():
    index = load_iocs([SHAI_HULUD])
    found = []
    for fixture, name in [
        ("npm/package-lock-v3.json", "package-lock.json"),
        ("yarn-berry/yarn.lock", "yarn.lock"),
        ("package_json/package.json", "package.json"),
    ]:
        deps = parse(name, (FIXTURES / fixture).read_text())
        found += match_dependencies(deps, index, "acme/storefront", f"web/{name}")
    assert [(m.file_path, m.line_number, m.package_name, m.version, m.kind) for m in found] == [
        ("web/package-lock.json", 24, "@asyncapi/specs", "6.8.2", "locked"),
        ("web/yarn.lock", 8, "@asyncapi/specs", "6.8.3", "locked"),
        ("web/package.json", 10, "@asyncapi/specs", "6.10.1", "declared"),
        ("web/package.json", 10, "@asyncapi/specs", "6.8.2", "declared"),
        ("web/package.json", 10, "@asyncapi/specs", "6.8.3", "declared"),
        ("web/package.json", 10, "@asyncapi/specs", "6.9.1", "declared"),
    ]
