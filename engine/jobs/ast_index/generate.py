"""A synthetic source tree for the tests and ``bench/index.py``: not used at run time.

:func:`generate_tree` writes ``files`` ordinary source files in the four
languages (directories of 50), and with ``specials`` the files every index must
survive: binary, not UTF-8, above the size limit, a dangling link, unreadable,
a syntax error per language, deeply nested ones, and files that ``.gitignore``
or an ``--exclude`` must keep out. It returns what each indexed path must give.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

LANGS = ("py", "js", "ts", "go")
SPECIAL_MAX_SIZE = 20_000
EXCLUDE = ["vendor/"]


@dataclass
class Expected:
    status: dict[str, str] = field(default_factory=dict)         # path -> ok | syntax_error | error
    error_line: dict[str, int] = field(default_factory=dict)     # path -> line of the syntax error
    min_depth: dict[str, int] = field(default_factory=dict)      # path -> at least this nesting depth
    symbols: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # path -> (name, kind, parent)
    imports: dict[str, list[str]] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)            # must not be in the index


def _python(i: int, funcs: int) -> str:
    body = [f'"""Module {i}: generated."""', "import os", f"from pkg{i % 7} import helper{i % 7}", "",
            f"class Widget{i}:"]
    for k in range(funcs):
        body += [f"    def method_{k}(self, x):", "        if x:", "            for y in range(x):",
                 "                x += y", "        return x", ""]
    for k in range(funcs):
        body += [f"def function_{i}_{k}(a, b):", "    while a > b:", "        a -= 1", "    return a + b", ""]
    return "\n".join(body) + "\n"


def _javascript(i: int, funcs: int, typed: bool) -> str:
    t = ": number" if typed else ""
    body = ["/** Module generated. */", f'import {{ helper }} from "./lib{i % 5}";', 'const fs = require("fs");',
            "", f"export class Widget{i} {{"]
    for k in range(funcs):
        body += [f"  method_{k}(x{t}) {{", "    if (x) {", "      for (let y = 0; y < x; y++) { x += y; }",
                 "    }", "    return x;", "  }"]
    body.append("}")
    for k in range(funcs):
        body += [f"export function function_{i}_{k}(a{t}, b{t}) {{", "  while (a > b) { a -= 1; }",
                 "  return a + b;", "}"]
    if typed:
        body += [f"export interface Shape{i} {{ size: number }}", f"type Alias{i} = string;"]
    return "\n".join(body) + "\n"


def _go(i: int, funcs: int) -> str:
    body = [f"// Package pkg{i} is generated.", f"package pkg{i}", "", "import (", '\t"fmt"', '\t"os"', ")", "",
            f"type Widget{i} struct {{", "\tsize int", "}", ""]
    for k in range(funcs):
        body += [f"func (w *Widget{i}) Method{k}(x int) int {{", "\tif x > 0 {",
                 "\t\tfor y := 0; y < x; y++ {", "\t\t\tx += y", "\t\t}", "\t}", "\tfmt.Println(os.Args)",
                 "\treturn x", "}", ""]
    for k in range(funcs):
        body += [f"func Function{i}x{k}(a, b int) int {{", "\tfor a > b {", "\t\ta--", "\t}", "\treturn a + b",
                 "}", ""]
    return "\n".join(body) + "\n"


def source(lang: str, i: int, funcs: int = 4) -> str:
    if lang == "py":
        return _python(i, funcs)
    if lang == "go":
        return _go(i, funcs)
    return _javascript(i, funcs, typed=lang == "ts")


def generate_tree(root: str, files: int, *, funcs: int = 4, specials: bool = True) -> Expected:
    expected = Expected()
    for i in range(files):
        lang = LANGS[i % len(LANGS)]
        rel = f"src/d{i // 50:05d}/m{i:06d}.{lang}"
        _write(root, rel, source(lang, i, funcs))
        expected.status[rel] = "ok"
    if specials:
        _specials(root, expected, funcs)
    return expected


def _write(root: str, rel: str, text: str | bytes) -> str:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(text.encode() if isinstance(text, str) else text)
    return path


def _specials(root: str, expected: Expected, funcs: int) -> None:
    s = expected.status
    _write(root, ".gitignore", "build/\n*.gen.js\n")
    for rel in ("build/out.py", "src/bundle.gen.js", "vendor/dep.go"):
        _write(root, rel, source(rel.rsplit(".", 1)[1], 0, funcs))
        expected.left_out.append(rel)
    _write(root, "README.md", "not source\n")
    expected.left_out.append("README.md")

    _write(root, "special/binary.py", b"\x00\x01\x02binary" * 10)
    s["special/binary.py"] = "error"
    _write(root, "special/latin1.go", "package p\n// caf\xe9\n".encode("latin-1"))
    s["special/latin1.go"] = "error"
    _write(root, "special/huge.ts", "// padding\n" * (SPECIAL_MAX_SIZE // 11 + 10))
    s["special/huge.ts"] = "error"
    os.symlink(os.path.join(root, "special", "missing-target.js"), os.path.join(root, "special", "dangling.js"))
    s["special/dangling.js"] = "error"
    locked = _write(root, "special/locked.py", "x = 1\n")
    os.chmod(locked, 0)
    # root can read a mode-000 file: then it is an ordinary file
    s["special/locked.py"] = "ok" if os.access(locked, os.R_OK) else "error"

    for rel, text, line in (
        ("special/bad.py", "import os\n\ndef broken(:\n    pass\n", 3),
        ("special/bad.js", "function ok() {}\nlet = ;\n", 2),
        ("special/bad.ts", "const a: number = 1;\n\nclass {\n", 3),
        ("special/bad.go", "package p\n\nfunc F( {\n}\n", 3),
    ):
        _write(root, rel, text)
        s[rel], expected.error_line[rel] = "syntax_error", line

    # 150 levels: beyond CPython's 100 levels of indentation, a syntax error with its line
    _write(root, "special/too_deep.py", "def f(x):\n" + "".join(" " * d + "if x:\n" for d in range(1, 150))
           + " " * 150 + "pass\n")
    s["special/too_deep.py"], expected.error_line["special/too_deep.py"] = "syntax_error", 101
    _write(root, "special/deep.py", "def f(x):\n" + "".join("    " * d + "if x:\n" for d in range(1, 60))
           + "    " * 60 + "pass\n")
    s["special/deep.py"], expected.min_depth["special/deep.py"] = "ok", 60
    for ext in ("js", "go"):
        head = "package p\n\n" if ext == "go" else ""
        rel = f"special/deep.{ext}"
        _write(root, rel, head + "func f(x int) {\n" * (ext == "go") + "function f(x) {\n" * (ext == "js")
               + "if (x) {\n" * 500 * (ext == "js") + "if x > 0 {\n" * 500 * (ext == "go")
               + "}\n" * 501)
        s[rel], expected.min_depth[rel] = "ok", 501

    _write(root, "special/shapes.tsx", 'import React from "react";\n\nexport class Panel {\n  render() {\n'
                                       '    return <div>hi</div>;\n  }\n}\n')
    s["special/shapes.tsx"] = "ok"
    expected.symbols["special/shapes.tsx"] = [("Panel", "class", ""), ("render", "method", "Panel")]
    expected.imports["special/shapes.tsx"] = ["react"]
    expected.symbols["src/d00000/m000000.py"] = [("Widget0", "class", ""), ("method_0", "method", "Widget0"),
                                                   ("function_0_0", "function", "")]
    expected.imports["src/d00000/m000000.py"] = ["os", "pkg0"]
    expected.symbols["src/d00000/m000003.go"] = [("Widget3", "struct", ""), ("Method0", "method", "Widget3"),
                                                   ("Function3x0", "function", "")]
    expected.imports["src/d00000/m000003.go"] = ["fmt", "os"]
