"""go.mod and go.sum."""

from pathlib import Path

import pytest

from engine.jobs.ioc_scan.models import LockfileError
from engine.jobs.ioc_scan.parsers import parse

FIXTURES = Path(__file__).parent / "fixtures" / "go"


def triples(deps):
    return [(d.name, d.version, d.line) for d in deps]


def test_go_mod_require_blocks_single_requires_indirect_and_replace():
    deps = parse("go.mod", (FIXTURES / "go.mod").read_text())
    assert triples(deps) == [
        ("github.com/gin-gonic/gin", "v1.9.1", 8),
        ("github.com/spf13/cobra", "v1.8.0", 9),
        ("golang.org/x/crypto", "v0.22.0", 10),  # // indirect
        ("gopkg.in/yaml.v3", "v3.0.1", 11),
        ("github.com/google/uuid", "v1.6.0", 14),  # one-line require
        ("github.com/bytedance/sonic", "v1.11.6", 17),
        ("github.com/ugorji/go/codec", "v1.2.12", 18),
        ("github.com/acme/cobra", "v1.8.0-acme.1", 21),  # replace target: what actually gets built
    ]
    assert {(d.ecosystem, d.kind) for d in deps} == {("go", "locked")}


def test_go_sum_reports_each_module_version_once_on_its_first_line():
    deps = parse("go.sum", (FIXTURES / "go.sum").read_text())
    assert triples(deps) == [
        ("github.com/bytedance/sonic", "v1.11.6", 1),
        ("github.com/gin-gonic/gin", "v1.9.1", 3),
        ("github.com/google/uuid", "v1.6.0", 5),
        ("github.com/spf13/cobra", "v1.7.0", 7),  # only a /go.mod line: still in the module graph
        ("github.com/spf13/cobra", "v1.8.0", 8),
        ("golang.org/x/crypto", "v0.22.0", 10),
        ("gopkg.in/yaml.v3", "v3.0.1", 12),
    ]


def test_go_mod_with_tabs_and_a_glued_block_opener():
    text = "module x\n\nrequire(\n\tgithub.com/a/b v1.0.0\n)\nrequire\tgithub.com/c/d v2.0.0+incompatible\n"
    assert triples(parse("go.mod", text)) == [
        ("github.com/a/b", "v1.0.0", 4),
        ("github.com/c/d", "v2.0.0+incompatible", 6),
    ]


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("go.mod", "module x\n\nrequire (\n\tgithub.com/a/b\n)\n", 4),
        ("go.mod", "module x\nrequires github.com/a/b v1.0.0\n", 2),
        ("go.mod", "module x\nrequire (\n\tgithub.com/a/b v1.0.0\n", None),
        ("go.sum", "github.com/a/b v1.0.0 h1:abc=\ngarbage\n", 2),
    ],
)
def test_malformed_go_files_raise(name, text, line):
    with pytest.raises(LockfileError) as caught:
        parse(f"cmd/{name}", text)
    assert caught.value.line == line and caught.value.path == f"cmd/{name}"
