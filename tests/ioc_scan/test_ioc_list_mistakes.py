"""IOC lists that would silently scan for nothing, or for every version, are input errors (issue 8.9)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import InputError
from engine.jobs.ioc_scan.iocs import load_iocs

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("only-header.csv", "Package,Version\n", "only-header.csv:1: a header and no IOC rows"),
        ("only-header.csv", "# exported 2025-11-24\n\nPackage,Version\n\n", "only-header.csv:3: a header and no IOC"),
        ("empty-version.csv", "Package,Version\nchalk,= 5.6.1\nfoo,\n", "empty-version.csv:3: no version"),
        ("empty-version.csv", "Ecosystem,Package,Version\nnpm,foo\n", "empty-version.csv:2: no version"),
        ("null.json", '[{"name": "foo", "versions": null}]', "null.json: entry 1 (foo): no version"),
        ("missing.yaml", "- name: foo\n", "missing.yaml: entry 1 (foo): no version"),
        ("empty.json", "[]", "empty.json: no IOC in this list"),
        ("comments.txt", "# nothing yet\n\n", "comments.txt: no IOC in this list"),
        ("at.txt", "foo@\n", "at.txt:1: no version"),
    ],
)
def test_a_list_that_names_nothing_or_no_version_is_an_error_naming_file_and_line(tmp_path, name, content,
                                                                                    fragment):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as caught:
        load_iocs([path])
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_every_version_needs_an_explicit_star(tmp_path):
    path = tmp_path / "wildcards.csv"
    path.write_text("Package,Version\nfoo,*\nbar,= 1.0.0\n")
    index = load_iocs([path])
    assert index.lookup("npm", "foo")[0].versions is None
    assert index.lookup("npm", "bar")[0].versions == {"1.0.0"}


@pytest.mark.parametrize("content", ["Package,Version\n", "Package,Version\nfoo,\n"])
def test_scan_refuses_the_list_with_exit_2_and_one_line(tmp_path, content):
    iocs = tmp_path / "iocs.csv"
    iocs.write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "console.cli", "scan", "--repo", "acme/app", "--iocs", str(iocs),
         "--db", str(tmp_path / "s.db"), "--api-url", "http://127.0.0.1:9", "--token", "x", "--headless"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and f"{iocs}:" in result.stderr and "Traceback" not in result.stderr
