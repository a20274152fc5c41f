"""A blob above ``stream_threshold_bytes`` is read in parts: the same findings as the whole-file
parse, on the fixtures of every streamed format and on few-MB files of each."""

from pathlib import Path

import pytest

from engine.jobs.ioc_scan.models import LockfileError
from engine.jobs.ioc_scan.parsers import BlobLimits, parser_for
from engine.jobs.ioc_scan.parsers.streaming import STREAMING
from engine.sim import hostile

FIXTURES = Path(__file__).parent / "fixtures"
STREAM_ALL = BlobLimits(stream_threshold=0, max_whole_bytes=1 << 40)
STREAMED_FIXTURES = [
    ("npm/package-lock-v2.json", "package-lock.json"),
    ("npm/package-lock-v3.json", "package-lock.json"),
    ("npm/package-lock-v1.json", "package-lock.json"),     # no "packages": parsed whole
    ("npm/npm-shrinkwrap.json", "npm-shrinkwrap.json"),
    ("yarn-classic/yarn.lock", "yarn.lock"),
    ("yarn-berry/yarn.lock", "yarn.lock"),
    ("pnpm/v5/pnpm-lock.yaml", "pnpm-lock.yaml"),
    ("pnpm/v6/pnpm-lock.yaml", "pnpm-lock.yaml"),
    ("pnpm/v9/pnpm-lock.yaml", "pnpm-lock.yaml"),
    ("python/requirements.txt", "requirements.txt"),
    ("python/requirements-dev.txt", "requirements-dev.txt"),
    ("python/poetry.lock", "poetry.lock"),
    ("python/uv.lock", "uv.lock"),
    ("cargo/Cargo.lock", "Cargo.lock"),
]
BIG = [
    (hostile.big_package_lock, "package-lock.json"),
    (hostile.big_yarn_lock, "yarn.lock"),
    (hostile.big_pnpm_lock, "pnpm-lock.yaml"),
    (hostile.big_requirements, "requirements.txt"),
    (hostile.big_poetry_lock, "poetry.lock"),
    (hostile.big_cargo_lock, "Cargo.lock"),
]


@pytest.mark.parametrize(("fixture", "name"), STREAMED_FIXTURES)
def test_streaming_a_fixture_finds_what_the_whole_file_parse_finds(fixture, name):
    data = (FIXTURES / fixture).read_bytes()
    parser = parser_for(name)
    whole = parser.parse(name, data)
    streamed = parser.parse_blob(name, data, STREAM_ALL)
    assert list(streamed) == list(whole) and len(whole) > 0
    assert streamed.notes == whole.notes


@pytest.mark.parametrize(("make", "name"), BIG)
def test_a_few_mb_lockfile_streams_to_the_same_findings_and_lines(make, name):
    data = make(6000)
    assert len(data) > 1_000_000 or name == "requirements.txt" and len(data) > 800_000
    parser = parser_for(name)
    assert parser.name in STREAMING
    whole = list(parser.parse(name, data))
    streamed = list(parser.parse_blob(name, data, BlobLimits(stream_threshold=len(data) - 1,
                                                             max_whole_bytes=0)))
    assert streamed == whole and len(whole) >= 6000
    planted = [d for d in whole if d.name in ("02-echo", "requests", "serde")]
    assert planted and all(d.line > 1 for d in planted)      # a real line, not the fallback


def test_a_crlf_bom_lockfile_streams_to_the_same_findings():
    data = b"\xef\xbb\xbf" + hostile.big_yarn_lock(200).replace(b"\n", b"\r\n")
    parser = parser_for("yarn.lock")
    assert list(parser.parse_blob("yarn.lock", data, STREAM_ALL)) == list(parser.parse("yarn.lock", data))


def test_a_large_file_no_streaming_reader_takes_is_refused_with_its_size_and_the_setting():
    data = b'{"lockfileVersion": 1, "workspaces": {}, "packages": {}}' + b" " * 5000
    with pytest.raises(LockfileError) as caught:
        parser_for("bun.lock").parse_blob("bun.lock", data, BlobLimits(stream_threshold=1000, max_whole_bytes=4000))
    assert "too large to parse" in caught.value.reason and "5,056 bytes" in caught.value.reason
    assert "max_usage_mb" in caught.value.reason
    # below the memory bound it is parsed whole, as before
    parser_for("bun.lock").parse_blob("bun.lock", data, BlobLimits(stream_threshold=1000, max_whole_bytes=10_000))


@pytest.mark.parametrize("name", ["package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock"])
def test_a_streamed_file_that_is_not_utf8_fails_as_the_whole_parse_does(name):
    data = b"x" * 3000 + b"\xff\xfe" + b"y" * 10
    parser = parser_for(name)
    with pytest.raises(LockfileError) as whole:
        parser.parse(name, data)
    with pytest.raises(LockfileError) as streamed:
        parser.parse_blob(name, data, STREAM_ALL)
    assert streamed.value.reason == whole.value.reason == "not UTF-8 text (byte 3000)"


def test_malformed_json_above_the_threshold_is_a_file_error_not_partial_findings():
    data = hostile.big_package_lock(300)[:-40]
    with pytest.raises(LockfileError) as caught:
        parser_for("package-lock.json").parse_blob("package-lock.json", data, STREAM_ALL)
    assert "invalid JSON" in caught.value.reason
