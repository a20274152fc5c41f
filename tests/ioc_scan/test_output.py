"""Output formats: table, JSON, CSV and SARIF 2.1.0 for GitHub code scanning."""

import csv
import io
import json
import re

import pytest

from engine.jobs.ioc_scan.models import IOCMatch, LockfileError, ParseFailure
from engine.jobs.ioc_scan.output import CSV_COLUMNS, render, sarif_by_repo

MATCHES = [
    IOCMatch(
        "acme/web",
        "apps/shop/package-lock.json",
        412,
        "@ctrl/tinycolor",
        "4.1.1",
        "npm",
        "shai-hulud-2-packages.csv",
        "locked",
    ),
    IOCMatch(
        "acme/web",
        "package.json",
        14,
        "@asyncapi/specs",
        "6.8.2",
        "npm",
        "shai-hulud-2-packages.csv",
        "declared",
    ),
    IOCMatch(
        "acme/api", "services/billing/poetry.lock", 88, "ultralytics", "8.3.41", "pypi", "team.txt", "locked"
    ),
    IOCMatch(
        "acme/web",
        "apps/shop/package-lock.json",
        97,
        "@ctrl/tinycolor",
        "4.1.1",
        "npm",
        "shai-hulud-2-packages.csv",
        "locked",
    ),
]
FAILURES = [ParseFailure("acme/api", "legacy/yarn.lock", "expected an entry header ending in ':'", 12)]

# The subset of the SARIF 2.1.0 schema GitHub code scanning relies on ("SARIF support for code
# scanning"), written out here: required keys, types and the values code scanning reads.
_TEXT = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}
SARIF_SUBSET = {
    "type": "object",
    "required": ["$schema", "version", "runs"],
    "properties": {
        "$schema": {"type": "string", "pattern": r"^https://"},
        "version": {"enum": ["2.1.0"]},
        "runs": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["tool", "results"],
                "properties": {
                    "tool": {
                        "type": "object",
                        "required": ["driver"],
                        "properties": {
                            "driver": {
                                "type": "object",
                                "required": ["name", "informationUri", "rules"],
                                "properties": {
                                    "name": {"enum": ["batchdeck"]},
                                    "informationUri": {"type": "string", "pattern": r"^https?://"},
                                    "rules": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": [
                                                "id",
                                                "shortDescription",
                                                "fullDescription",
                                                "help",
                                                "properties",
                                            ],
                                            "properties": {
                                                "id": {"type": "string"},
                                                "shortDescription": _TEXT,
                                                "fullDescription": _TEXT,
                                                "help": _TEXT,
                                                "properties": {
                                                    "type": "object",
                                                    "required": ["tags", "security-severity"],
                                                    "properties": {
                                                        "tags": {
                                                            "type": "array",
                                                            "items": {"type": "string"},
                                                        },
                                                        "security-severity": {
                                                            "type": "string",
                                                            "pattern": r"^\d+(\.\d+)?$",
                                                        },
                                                    },
                                                },
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    },
                    "results": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["ruleId", "level", "message", "locations", "partialFingerprints"],
                            "properties": {
                                "ruleId": {"type": "string"},
                                "level": {"enum": ["error"]},
                                "message": _TEXT,
                                "locations": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {
                                        "type": "object",
                                        "required": ["physicalLocation"],
                                        "properties": {
                                            "physicalLocation": {
                                                "type": "object",
                                                "required": ["artifactLocation", "region"],
                                                "properties": {
                                                    "artifactLocation": {
                                                        "type": "object",
                                                        "required": ["uri"],
                                                        "properties": {
                                                            "uri": {"type": "string", "pattern": r"^[^/]"}
                                                        },
                                                    },
                                                    "region": {
                                                        "type": "object",
                                                        "required": ["startLine"],
                                                        "properties": {
                                                            "startLine": {"type": "integer", "minimum": 1}
                                                        },
                                                    },
                                                },
                                            }
                                        },
                                    },
                                },
                                "partialFingerprints": {"type": "object"},
                            },
                        },
                    },
                },
            },
        },
    },
}
_TYPES = {"object": dict, "array": list, "string": str, "integer": int}


def validate(value, schema, where="$"):
    """A small JSON-schema subset validator (type, required, properties, items, enum, pattern, minItems, minimum)."""
    errors = []
    expected = schema.get("type")
    if expected and not (isinstance(value, _TYPES[expected]) and not isinstance(value, bool)):
        return [f"{where}: expected {expected}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{where}: {value} < {schema['minimum']}")
    if isinstance(value, dict):
        errors += [f"{where}: missing {key}" for key in schema.get("required", []) if key not in value]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += validate(value[key], sub, f"{where}.{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        for index, item in enumerate(value):
            errors += validate(item, schema.get("items", {}), f"{where}[{index}]")
    return errors


def test_the_validator_rejects_what_code_scanning_would():
    broken = json.loads(render(MATCHES, "sarif"))
    del broken["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
    broken["runs"][0]["results"][1]["level"] = "warning"
    broken["version"] = "2.0.0"
    assert len(validate(broken, SARIF_SUBSET)) == 3


def test_sarif_has_what_github_code_scanning_requires():
    document = json.loads(render(MATCHES, "sarif", FAILURES, {"run_id": 7}))
    assert validate(document, SARIF_SUBSET) == []
    run = document["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [
        "ioc/npm/@asyncapi/specs",
        "ioc/npm/@ctrl/tinycolor",
        "ioc/pypi/ultralytics",
    ]
    for rule in rules:
        assert "security" in rule["properties"]["tags"]
        assert 9.0 <= float(rule["properties"]["security-severity"]) <= 10.0  # shown as critical
    assert len(run["results"]) == len(MATCHES)
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_sarif_results_point_at_file_and_line():
    run = json.loads(render(MATCHES, "sarif"))["runs"][0]
    located = [
        (
            r["properties"]["repository"],
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
        )
        for r in run["results"]
    ]
    assert located == [
        ("acme/api", "services/billing/poetry.lock", 88),
        ("acme/web", "apps/shop/package-lock.json", 97),
        ("acme/web", "apps/shop/package-lock.json", 412),
        ("acme/web", "package.json", 14),
    ]


def test_sarif_fingerprints_are_distinct_and_survive_a_line_shift():
    before = json.loads(render(MATCHES, "sarif"))["runs"][0]["results"]
    fingerprints = [r["partialFingerprints"]["batchdeckFinding/v1"] for r in before]
    assert len(set(fingerprints)) == len(
        fingerprints
    )  # two copies of one package in one file stay two alerts
    shifted = [IOCMatch(**{**m.to_dict(), "line_number": m.line_number + 30}) for m in MATCHES]
    after = json.loads(render(shifted, "sarif"))["runs"][0]["results"]
    assert [r["partialFingerprints"] for r in after] == [r["partialFingerprints"] for r in before]


def test_multi_repo_sarif_names_the_repo_in_messages_single_repo_does_not_need_to():
    multi = json.loads(render(MATCHES, "sarif"))["runs"][0]["results"]
    assert all(r["message"]["text"].startswith(r["properties"]["repository"] + ": ") for r in multi)
    single = json.loads(render(MATCHES[:2], "sarif"))["runs"][0]["results"]
    assert all(not r["message"]["text"].startswith("acme/web") for r in single)
    assert (
        "@ctrl/tinycolor@4.1.1" in single[0]["message"]["text"]
        and "shai-hulud-2-packages.csv" in single[0]["message"]["text"]
    )


def test_sarif_by_repo_splits_results_for_per_repo_uploads():
    documents = sarif_by_repo(MATCHES, FAILURES)
    assert sorted(documents) == ["acme/api", "acme/web"]
    web = json.loads(documents["acme/web"])
    assert validate(web, SARIF_SUBSET) == []
    assert {r["properties"]["repository"] for r in web["runs"][0]["results"]} == {"acme/web"}
    assert len(web["runs"][0]["results"]) == 3
    api = json.loads(documents["acme/api"])["runs"][0]
    notes = api["invocations"][0]["toolExecutionNotifications"]
    assert len(notes) == 1 and "legacy/yarn.lock" in notes[0]["message"]["text"]


def test_sarif_uri_is_repo_relative():
    odd = IOCMatch("acme/x", "/apps/my app/package-lock.json", 3, "ms", "2.1.3", "npm", "x", "locked")
    result = json.loads(render([odd], "sarif"))["runs"][0]["results"][0]
    assert (
        result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        == "apps/my%20app/package-lock.json"
    )


def test_json_lists_matches_parse_errors_and_run_info():
    document = json.loads(render(MATCHES, "json", FAILURES, {"run_id": 7, "target": "org:acme"}))
    assert document["run"] == {"run_id": 7, "target": "org:acme"}
    assert {IOCMatch.from_dict(m) for m in document["matches"]} == set(MATCHES)
    assert [m["line_number"] for m in document["matches"]] == [88, 97, 412, 14]  # sorted by repo, file, line
    assert document["parse_errors"] == [
        {
            "repo": "acme/api",
            "file_path": "legacy/yarn.lock",
            "reason": "expected an entry header ending in ':'",
            "line": 12,
        }
    ]
    assert document["summary"]["findings"] == 4 and document["summary"]["declared"] == 1


def test_csv_has_a_header_and_one_row_per_match():
    text = render(MATCHES, "csv", FAILURES)
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {IOCMatch.from_dict(row) for row in rows} == set(MATCHES)


def test_table_shows_every_finding_and_the_parse_errors():
    text = render(MATCHES, "table", FAILURES, {"run": 7})
    for match in MATCHES:
        row = next(
            line for line in text.splitlines() if match.file_path in line and f" {match.line_number} " in line
        )
        for value in (
            match.repo,
            match.package_name,
            match.version,
            match.ecosystem,
            match.kind,
            match.ioc_source,
        ):
            assert value in row
    assert "4 finding(s): 3 locked, 1 declared" in text
    assert "Files that could not be parsed" in text and "legacy/yarn.lock" in text
    assert "\x1b[" not in text  # plain text, no terminal escapes


def test_empty_results_without_a_coverage_claim_no_clean_verdict():
    assert "No compromised packages found." not in render([], "table")
    assert "coverage unknown" in render([], "table")
    assert json.loads(render([], "json"))["complete"] is None
    assert json.loads(render([], "json"))["matches"] == []
    assert render([], "csv") == ",".join(CSV_COLUMNS) + "\n"
    empty = json.loads(render([], "sarif"))
    assert validate(empty, SARIF_SUBSET) == [] and empty["runs"][0]["results"] == []


def test_parse_errors_in_any_shape_the_job_keeps():
    shapes = [
        FAILURES[0],
        {
            "repo": "acme/api",
            "path": "legacy/yarn.lock",
            "error": "expected an entry header ending in ':'",
            "line": 12,
        },
        ("acme/api", "legacy/yarn.lock", "expected an entry header ending in ':'", 12),
    ]
    documents = [json.loads(render([], "json", [shape]))["parse_errors"] for shape in shapes]
    assert documents[0] == documents[1] == documents[2]
    from_error = json.loads(render([], "json", [LockfileError("legacy/yarn.lock", "bad", line=3)]))[
        "parse_errors"
    ]
    assert from_error == [{"repo": "", "file_path": "legacy/yarn.lock", "reason": "bad", "line": 3}]


def test_unknown_format_is_rejected():
    with pytest.raises(ValueError, match="unknown output format"):
        render(MATCHES, "xml")
