"""What one source file yields, computed in a worker process (local or on a Dask worker).

This module is what a worker imports: the standard library, ``tree_sitter`` and
the grammar wheels only (no engine, no SQLite), so a spawned process starts fast.
:func:`parse_request` takes a whole batch and answers with one message holding
the batch's table rows, ready for the engine's one writer (``executemany``): the
coordinating process does no per-file or per-symbol work on a reply, which
matters when it shares the machine's cores with the workers. A file that cannot
be read or parsed is one row with ``status`` ``error`` (an isolated error),
never an exception that would lose its neighbours.

Python is parsed with :mod:`ast`; JavaScript, TypeScript/TSX and Go with
tree-sitter and the grammars shipped as wheels (no download at run time).
Nesting depth counts nested blocks (a function body inside a class body inside
an ``if`` is 3); traversals are iterative so deeply nested files cannot exhaust
the interpreter's stack.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import signal
import time
from typing import Any

LANGUAGES: dict[str, str] = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
}

BINARY_SNIFF = 8192


def language_of(name: str) -> str | None:
    """By the file name's extension (called for every directory entry: no ``splitext``)."""
    dot = name.rfind(".")
    return LANGUAGES.get(name[dot:].lower()) if dot > 0 else None


# ------------------------------------------------------------------------------ the batch
def parse_request(request: dict[str, Any]) -> dict[str, Any]:
    """A batch of files -> its rows for the kind's tables (the column order of
    :mod:`~engine.jobs.ast_index.schema`'s statements), plus the batch's parse time and worker pid.

    ``request``: ``{"root": real path, "run_id": int, "options": {...}, "files": [(path relative to
    the root, language, stored sha or None, already in the index?, size and mtime_ns discovery saw), ...]}``.

    Reply: ``files`` (FILE_SQL rows), ``touched`` (TOUCH_SQL: same content, new mtime), ``forget``
    (``(root, path)``: files in the index parsed again, whose old symbols and imports go), ``symbols``,
    ``imports``, ``errors`` and ``syntax_errors`` (counts), ``seconds``, ``pid``. Every row of a file
    shares its ``root`` and ``path`` string objects, so the reply pickles each once.
    """
    started = time.perf_counter()
    options = request.get("options") or {}
    root, run_id = request["root"], request["run_id"]
    files: list[tuple[Any, ...]] = []
    touched: list[tuple[Any, ...]] = []
    forget: list[tuple[str, str]] = []
    symbols: list[tuple[Any, ...]] = []
    imports: list[tuple[str, str, str]] = []
    errors = syntax_errors = 0
    for path, language, prev_sha, known, size, mtime_ns in request["files"]:
        r = parse_file(os.path.join(root, path), language, prev_sha, options)
        status = r["status"]
        if status == "unchanged":
            touched.append((r["size"], r["mtime_ns"], run_id, root, path))
            continue
        if known:
            forget.append((root, path))
        errors += status == "error"
        syntax_errors += status == "syntax_error"
        counts = r.get("counts")
        docstring = r.get("docstring")
        # a file that could not even be stat'ed keeps what discovery saw, so a re-run can skip it
        files.append((root, path, path.rpartition("/")[0], run_id, language, r.get("size", size),
                      r.get("mtime_ns", mtime_ns), r.get("sha"), status, r.get("lines"), r.get("max_depth"),
                      None if docstring is None else int(docstring),
                      None if counts is None else json.dumps(counts, separators=(",", ":")), r["error"],
                      r["error_line"]))
        symbols.extend((root, path, name, kind, line, parent) for name, kind, line, parent in r.get("symbols", ()))
        imports.extend((root, path, module) for module in r.get("imports", ()))
    return {"files": files, "touched": touched, "forget": forget, "symbols": symbols, "imports": imports,
            "errors": errors, "syntax_errors": syntax_errors, "seconds": time.perf_counter() - started,
            "pid": os.getpid()}


def parse_file(path: str, language: str, prev_sha: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """What one file yields (``prev_sha``: the content hash of its stored summary, if any)."""
    _test_hooks(path, options)
    out: dict[str, Any] = {"status": "ok", "error": None, "error_line": None}
    max_size = int(options.get("max_size") or 0)
    try:
        st = os.stat(path)
        out["size"], out["mtime_ns"] = st.st_size, st.st_mtime_ns
        if max_size and st.st_size > max_size:
            return _error(out, f"file is {st.st_size} bytes, above the size limit of {max_size}")
        with open(path, "rb") as handle:
            data = handle.read(max_size + 1 if max_size else -1)
    except OSError as exc:
        return _error(out, f"cannot read: {exc.strerror or exc}")
    if max_size and len(data) > max_size:
        return _error(out, f"file grew above the size limit of {max_size} bytes while being indexed")
    out["sha"] = hashlib.blake2b(data, digest_size=16).hexdigest()
    if prev_sha and prev_sha == out["sha"]:
        out["status"] = "unchanged"        # same content, new mtime: the stored summary stands
        return out
    if b"\0" in data[:BINARY_SNIFF]:
        return _error(out, "binary file (NUL bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _error(out, f"not UTF-8 text (byte {exc.start})")
    out["lines"] = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
    try:
        summary = _parse_python(text) if language == "python" else _parse_tree_sitter(data, language)
    except (RecursionError, MemoryError) as exc:
        return _error(out, f"too deeply nested to parse ({type(exc).__name__})")
    out.update(summary)
    if out["error"] is not None:
        out["status"] = "syntax_error"
    return out


def _error(out: dict[str, Any], reason: str) -> dict[str, Any]:
    out["status"], out["error"] = "error", reason
    return out


def _test_hooks(path: str, options: dict[str, Any]) -> None:
    """Deterministic faults for tests, named in the run's spec (never on by default).

    ``crash_marker``: a file of that name makes the worker process exit at once
    with code 70 (content ``once``: only the first time, a ``.crashed`` flag beside
    it says it happened; ``kill_once``: killed by SIGKILL instead, as the kernel's
    OOM killer or an operator would). ``hold_marker``: a file of that name holds its
    batch until a ``.release`` file appears beside it (or the parent process is gone).
    """
    name = os.path.basename(path)
    if options.get("crash_marker") and name == options["crash_marker"]:
        with open(path) as handle:
            mode = handle.read().strip()
        if mode not in ("once", "kill_once"):
            os._exit(70)
        try:
            os.close(os.open(path + ".crashed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        if mode == "kill_once":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(70)
    if options.get("hold_marker") and name == options["hold_marker"]:
        parent = os.getppid()
        while not os.path.exists(path + ".release") and os.getppid() == parent:
            time.sleep(0.02)


# ------------------------------------------------------------------------------ Python
_PY_BLOCKS: tuple[type[ast.AST], ...] = (
    ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.AsyncFor, ast.While,
    ast.With, ast.AsyncWith, ast.Try, ast.ExceptHandler, ast.Match, ast.match_case,
)
if hasattr(ast, "TryStar"):
    _PY_BLOCKS = (*_PY_BLOCKS, ast.TryStar)


def _parse_python(text: str) -> dict[str, Any]:
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        return {**_empty(), "error": f"SyntaxError: {exc.msg}", "error_line": exc.lineno}
    except ValueError as exc:      # source code string cannot contain null bytes, and the like
        return {**_empty(), "error": f"invalid source: {exc}", "error_line": None}
    symbols: list[list[Any]] = []
    imports: list[str] = []
    counts = {"functions": 0, "methods": 0, "classes": 0, "imports": 0}
    max_depth = 0
    # (node, block depth, enclosing symbol name, enclosing symbol kind)
    stack: list[tuple[ast.AST, int, str, str]] = [(tree, 0, "", "")]
    while stack:
        node, depth, parent, parent_kind = stack.pop()
        if isinstance(node, _PY_BLOCKS):
            depth += 1
            max_depth = max(max_depth, depth)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            kind = "method" if parent_kind == "class" else "function"
            counts["methods" if kind == "method" else "functions"] += 1
            symbols.append([node.name, kind, node.lineno, parent])
            parent, parent_kind = (f"{parent}.{node.name}" if parent else node.name), kind
        elif isinstance(node, ast.ClassDef):
            counts["classes"] += 1
            symbols.append([node.name, "class", node.lineno, parent])
            parent, parent_kind = (f"{parent}.{node.name}" if parent else node.name), "class"
        elif isinstance(node, ast.Import):
            imports.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imports.append("." * node.level + (node.module or ""))
        stack.extend((child, depth, parent, parent_kind) for child in ast.iter_child_nodes(node))
    symbols.sort(key=lambda s: s[2])
    counts["imports"] = len(imports)
    return {"symbols": symbols, "imports": sorted(set(imports)), "counts": counts, "max_depth": max_depth,
            "docstring": ast.get_docstring(tree, clean=False) is not None, "error": None, "error_line": None}


def _empty() -> dict[str, Any]:
    return {"symbols": [], "imports": [], "counts": {}, "max_depth": 0, "docstring": False}


# ------------------------------------------------------------------------------ tree-sitter
_PARSERS: dict[str, Any] = {}

#: node type -> symbol kind, per grammar family
_JS_SYMBOLS = {
    "function_declaration": "function", "generator_function_declaration": "function",
    "class_declaration": "class", "abstract_class_declaration": "class", "method_definition": "method",
    "interface_declaration": "interface", "type_alias_declaration": "type", "enum_declaration": "enum",
}
_GO_SYMBOLS = {"function_declaration": "function", "method_declaration": "method", "type_spec": "type"}
_JS_BLOCKS = frozenset({"statement_block", "class_body", "switch_body", "object", "interface_body",
                        "enum_body"})
_GO_BLOCKS = frozenset({"block", "field_declaration_list", "method_spec_list", "literal_value",
                        "expression_switch_statement", "type_switch_statement", "select_statement"})


def _parser(language: str) -> Any:
    parser = _PARSERS.get(language)
    if parser is None:
        import tree_sitter

        if language == "javascript":
            import tree_sitter_javascript

            lang = tree_sitter_javascript.language()
        elif language in ("typescript", "tsx"):
            import tree_sitter_typescript

            typescript = tree_sitter_typescript
            lang = typescript.language_tsx() if language == "tsx" else typescript.language_typescript()
        else:
            import tree_sitter_go

            lang = tree_sitter_go.language()
        parser = _PARSERS[language] = tree_sitter.Parser(tree_sitter.Language(lang))
    return parser


def _text(node: Any) -> str:
    return node.text.decode("utf-8", "replace") if node is not None and node.text is not None else ""


def _parse_tree_sitter(data: bytes, language: str) -> dict[str, Any]:
    tree = _parser(language).parse(data)
    root = tree.root_node
    go = language == "go"
    symbol_types = _GO_SYMBOLS if go else _JS_SYMBOLS
    blocks = _GO_BLOCKS if go else _JS_BLOCKS
    symbols: list[list[Any]] = []
    imports: list[str] = []
    counts = {"functions": 0, "methods": 0, "classes": 0, "types": 0, "imports": 0}
    max_depth = 0
    stack: list[tuple[Any, int, str]] = [(root, 0, "")]
    while stack:
        node, depth, parent = stack.pop()
        kind_name = node.type
        if kind_name in blocks:
            depth += 1
            max_depth = max(max_depth, depth)
        kind = symbol_types.get(kind_name)
        if kind is None and kind_name == "variable_declarator":
            value = node.child_by_field_name("value")
            if value is not None and value.type in ("arrow_function", "function_expression", "function"):
                kind = "function"
        if kind is not None:
            name = _text(node.child_by_field_name("name"))
            if go and kind == "type":
                value = node.child_by_field_name("type")
                kind = {"struct_type": "struct", "interface_type": "interface"}.get(
                    value.type if value is not None else "", "type")
            symbol_parent = parent
            if go and kind == "method":
                symbol_parent = _go_receiver(node)
            if name:
                symbols.append([name, kind, node.start_point[0] + 1, symbol_parent])
                bucket = {"function": "functions", "method": "methods", "class": "classes"}.get(kind, "types")
                counts[bucket] += 1
                if kind in ("class", "function", "method", "interface"):
                    parent = f"{parent}.{name}" if parent else name
        if kind_name == "import_statement" or (not go and kind_name == "export_statement"):
            source = node.child_by_field_name("source")
            if source is not None:
                imports.append(_string_value(source))
        elif go and kind_name == "import_spec":
            imports.append(_string_value(node.child_by_field_name("path")))
        elif not go and kind_name == "call_expression":
            function = node.child_by_field_name("function")
            if function is not None and function.type in ("identifier", "import") \
                    and _text(function) in ("require", "import"):
                arguments = node.child_by_field_name("arguments")
                first = arguments.named_children[0] if arguments is not None and arguments.named_children \
                    else None
                if first is not None and first.type == "string":
                    imports.append(_string_value(first))
        stack.extend((child, depth, parent) for child in reversed(node.named_children))
    symbols.sort(key=lambda s: s[2])
    counts["imports"] = len(imports)
    error, error_line = None, None
    if root.has_error:
        error_line = _first_error_line(root)
        error = "syntax error"
    return {"symbols": symbols, "imports": sorted({i for i in imports if i}), "counts": counts,
            "max_depth": max_depth, "docstring": _leading_doc_comment(root, go), "error": error,
            "error_line": error_line}


def _string_value(node: Any) -> str:
    return _text(node).strip("\"'`")


def _go_receiver(node: Any) -> str:
    receiver = node.child_by_field_name("receiver")
    if receiver is None:
        return ""
    for param in receiver.named_children:
        kind = param.child_by_field_name("type")
        if kind is not None:
            return _text(kind).lstrip("*").split("[")[0]
    return ""


def _first_error_line(root: Any) -> int | None:
    node = root
    while node is not None:
        if node.is_error or node.is_missing:
            return node.start_point[0] + 1
        node = next((c for c in node.children if c.has_error or c.is_missing or c.is_error), None)
    return None


def _leading_doc_comment(root: Any, go: bool) -> bool:
    """JSDoc (``/** */``) opening the file; in Go, a comment right above ``package``."""
    children = root.children
    if not children or children[0].type != "comment":
        return False
    if go:
        following = next((c for c in children if c.type != "comment"), None)
        last_comment = [c for c in children if c.start_byte < following.start_byte][-1] if following else None
        return following is not None and following.type == "package_clause" \
            and last_comment is not None and last_comment.end_point[0] + 1 >= following.start_point[0]
    return _text(children[0]).startswith("/**")
