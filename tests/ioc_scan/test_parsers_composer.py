"""composer.lock."""

from pathlib import Path

import pytest

from engine.jobs.ioc_scan.models import LockfileError
from engine.jobs.ioc_scan.parsers import parse

FIXTURES = Path(__file__).parent / "fixtures" / "composer"


def test_composer_lock_packages_and_dev_on_their_name_lines():
    deps = parse("composer.lock", (FIXTURES / "composer.lock").read_text())
    assert [(d.name, d.version, d.line) for d in deps] == [
        ("guzzlehttp/guzzle", "7.8.1", 10),  # not the "name" of an author further down
        ("symfony/console", "v6.4.6", 29),
        ("phpunit/phpunit", "10.5.17", 41),
    ]
    assert {(d.ecosystem, d.kind) for d in deps} == {("packagist", "locked")}


@pytest.mark.parametrize(
    "text",
    [
        '{"packages": {"a/b": "1.0"}}',
        '{"packages": [{"version": "1.0"}]}',
        '{"packages": [{"name": "a/b"}]}',
        '{"packages": [',
    ],
)
def test_malformed_composer_lock_raises(text):
    with pytest.raises(LockfileError) as caught:
        parse("app/composer.lock", text)
    assert str(caught.value).startswith("app/composer.lock")
