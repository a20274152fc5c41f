"""IOC lists: formats, the real Shai-Hulud 2.0 CSV, name normalisation, '*', errors."""

import csv
from pathlib import Path

import pytest

from engine.errors import InputError
from engine.jobs.ioc_scan.iocs import IOCIndex, load_iocs, normalize_name, normalize_version, parse_iocs

REPO = Path(__file__).resolve().parents[2]
SHAI_HULUD = REPO / "sample_configs" / "iocs" / "shai-hulud-2-packages.csv"
FIXTURES = Path(__file__).parent / "fixtures" / "iocs"


def _published_rows():
    with SHAI_HULUD.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_shipped_shai_hulud_list_loads_all_795_packages():
    index = load_iocs([SHAI_HULUD])
    assert len(index) == 795
    assert index.sources == ["shai-hulud-2-packages.csv"]
    assert {ioc.ecosystem for ioc in index} == {"npm"}


def test_every_alternative_of_every_double_pipe_line_is_its_own_version():
    index = load_iocs([SHAI_HULUD])
    rows = _published_rows()
    alternatives = [row for row in rows if "||" in row["Version"]]
    assert len(alternatives) == 233
    for row in rows:
        expected = {part.strip().lstrip("=").strip() for part in row["Version"].split("||")}
        (ioc,) = index.lookup("npm", row["Package"])
        assert ioc.versions == expected, row
        if "||" in row["Version"]:
            assert len(ioc.versions) >= 2
        assert all(v and " " not in v and "=" not in v for v in ioc.versions)


def test_csv_with_an_ecosystem_column():
    index = load_iocs([FIXTURES / "multi-ecosystem.csv"])
    assert index.lookup("npm", "@ctrl/tinycolor")[0].versions == {"4.1.1", "4.1.2"}
    assert index.lookup("pypi", "django-rest-framework")[0].versions == {
        "3.15.1"
    }  # "PyPI,Django_Rest.Framework"
    assert index.lookup("pypi", "ultralytics")[0].versions == {
        "8.3.41",
        "8.3.42",
    }  # comma alternatives in a quoted cell
    assert index.lookup("cargo", "rustdecimal")[0].versions is None  # '*'
    assert index.lookup("go", "github.com/boltdb-go/bolt")[0].versions == {"v1.3.1"}
    assert index.lookup("rubygems", "rest-client")[0].versions == {"1.6.13"}
    assert index.lookup("packagist", "acme/payments")[0].versions is None  # an explicit "*": every version


def test_json_list_and_mapping_shapes():
    listed = load_iocs([FIXTURES / "advisories.json"])
    assert listed.lookup("npm", "event-stream")[0].versions == {"3.3.6"}  # ecosystem defaults to npm
    assert listed.lookup("npm", "flatmap-stream")[0].versions is None
    mapped = load_iocs([FIXTURES / "by-ecosystem.json"])
    assert mapped.lookup("npm", "@asyncapi/specs")[0].versions == {"6.8.2", "6.8.3"}
    assert mapped.lookup("npm", "rc")[0].versions == {"1.2.9", "1.3.9", "2.3.9"}
    assert mapped.lookup("pypi", "ctx")[0].versions == {"0.2.2"}


def test_yaml_list_and_mapping_shapes():
    listed = load_iocs([FIXTURES / "team-list.yaml"])
    assert listed.lookup("npm", "@nx/devkit")[0].versions == {"21.5.0", "20.9.0"}
    assert listed.lookup("cargo", "faster-log")[0].versions is None  # crates.io: '_' and '-' are one name
    mapped = load_iocs([FIXTURES / "by-ecosystem.yaml"])
    assert len(mapped.lookup("npm", "coa")[0].versions) == 6
    assert mapped.lookup("go", "github.com/acme/evil")[0].versions == {"v0.1.0"}


def test_plain_text_lists():
    index = load_iocs([FIXTURES / "quick-list.txt"])
    assert len(index) == 10
    assert index.lookup("npm", "@duckdb/node-api")[0].versions == {"1.3.3"}
    assert index.lookup("pypi", "requests")[0].versions == {"2.99.0"}
    assert index.lookup("pypi", "some-package-name")[0].versions is None
    assert index.lookup("go", "github.com/acme/evil")[0].versions == {"v0.1.0"}
    assert index.lookup("cargo", "evm-units")[0].versions == {"0.1.1"}
    assert index.lookup("rubygems", "rest-client")[0].versions == {"1.6.13"}
    assert index.lookup("packagist", "acme/payments")[0].versions == {"1.0.0", "1.0.1"}
    assert index.lookup("npm", "whole-package-bad")[0].versions is None


def test_each_ioc_keeps_its_source_and_two_lists_stay_apart():
    index = load_iocs([FIXTURES / "multi-ecosystem.csv", FIXTURES / "advisories.json"])
    sources = {ioc.source: ioc.versions for ioc in index.lookup("npm", "@ctrl/tinycolor")}
    assert sources == {"multi-ecosystem.csv": {"4.1.1", "4.1.2"}, "advisories.json": {"4.1.1"}}
    assert index.sources == ["advisories.json", "multi-ecosystem.csv"]


def test_a_package_listed_twice_in_one_source_merges():
    iocs = parse_iocs(
        "Package,Version\nfoo,= 1.0.0\nfoo,= 1.0.1\nbar,= 2.0.0\nbar,*\n", "csv", source="x.csv"
    )
    index = IOCIndex.from_iocs(iocs)
    assert index.lookup("npm", "foo")[0].versions == {"1.0.0", "1.0.1"}
    assert index.lookup("npm", "bar")[0].versions is None
    assert len(index) == 2


@pytest.mark.parametrize(
    ("ecosystem", "a", "b"),
    [
        ("pypi", "Django_Rest.Framework", "django-rest-framework"),
        ("pypi", "zope.interface", "Zope-Interface"),
        ("pypi", "typing__extensions", "typing-extensions"),
        ("npm", "@Scope/Name", "@scope/name"),
        ("npm", "JSONStream", "jsonstream"),
        ("cargo", "Serde_JSON", "serde-json"),
    ],
)
def test_names_normalise_per_registry(ecosystem, a, b):
    assert normalize_name(ecosystem, a) == normalize_name(ecosystem, b)


def test_go_module_paths_stay_case_sensitive():
    assert normalize_name("go", "github.com/Azure/go-autorest") != normalize_name(
        "go", "github.com/azure/go-autorest"
    )


def test_versions_normalise_per_registry():
    assert normalize_version("pypi", "1.0") == normalize_version("pypi", "1.0.0")
    assert normalize_version("pypi", "2.0.0rc1") == normalize_version("pypi", "2.0.0-rc.1")
    assert normalize_version("go", "1.3.1") == "v1.3.1"
    assert normalize_version("packagist", "v6.4.6") == "6.4.6"
    assert normalize_version("npm", "= 4.1.1") == "4.1.1"


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("bad.csv", "Package,Version\nfoo,= 1.0.0\nbar,>= 2.0.0\n", "bad.csv:3"),
        ("bad.csv", "Name\nfoo\n", "bad.csv:1"),
        ("bad.csv", "Package,Version\n,= 1.0.0\n", "bad.csv:2"),
        ("bad.csv", "Ecosystem,Package,Version\nhex,phoenix,1.0.0\n", "bad.csv:2"),
        ("bad.csv", "", "empty"),
        ("bad.csv", "Package,Version\nfoo, || \n", "bad.csv:2"),
        ("bad.json", '[{"name": "a", "versions": ["1.0.0"]},\n {"versions": ["1"]}]', "entry 2"),
        ("bad.json", '{"npm": {"a": ["1.0.0"]},\n', "bad.json:2"),
        ("bad.json", '{"nuget": {"a": ["1.0.0"]}}', "nuget"),
        ("bad.yaml", "npm:\n  a: [1.10]\n", "quote"),
        ("bad.yaml", "npm:\n  a: [\n", "bad.yaml:3"),
        ("bad.txt", "chalk@5.6.1\nthis is not a package\n", "bad.txt:2"),
        ("bad.txt", "left-pad@^1.0.0\n", "bad.txt:1"),
        ("bad.xlsx", "", "unknown IOC list format"),
    ],
)
def test_bad_input_names_the_file_and_line(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as caught:
        load_iocs([path])
    message = str(caught.value)
    assert fragment in message and name in message and "\n" not in message


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_iocs([tmp_path / "nope.csv"])
