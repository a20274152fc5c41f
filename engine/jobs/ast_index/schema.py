"""The kind's tables, as :class:`~engine.kinds.Migration` steps, and the statements that write them.

The tables hold the latest index of each root (``root`` is the real path of the
indexed directory): a file's row is replaced when it is parsed again, and removed
when a later index of the root no longer finds it. ``run_id`` is the run that
last parsed the file.

Step 1 uses ``CREATE ... IF NOT EXISTS``: databases made before the kinds had
migrations already hold these tables (the kind created them itself), and the
step must leave them as they are.
"""

from __future__ import annotations

from engine.kinds import Migration

SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS ast_files (
    root TEXT NOT NULL, path TEXT NOT NULL, dir TEXT NOT NULL, run_id INTEGER NOT NULL,
    language TEXT, size INTEGER, mtime_ns INTEGER, sha TEXT,
    status TEXT NOT NULL,              -- ok, syntax_error, error
    lines INTEGER, max_depth INTEGER, docstring INTEGER, counts TEXT,
    error TEXT, error_line INTEGER,
    PRIMARY KEY (root, path)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ast_files_dir ON ast_files (root, dir);
-- keyed by file first (a re-parse deletes by that prefix): one secondary index each, for --query
CREATE TABLE IF NOT EXISTS ast_symbols (
    root TEXT NOT NULL, path TEXT NOT NULL, line INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
    parent TEXT NOT NULL, PRIMARY KEY (root, path, line, name, kind, parent)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ast_symbols_name ON ast_symbols (root, name);
CREATE TABLE IF NOT EXISTS ast_imports (
    root TEXT NOT NULL, path TEXT NOT NULL, module TEXT NOT NULL,
    PRIMARY KEY (root, path, module)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ast_imports_module ON ast_imports (root, module);
"""

MIGRATIONS = (Migration(1, SCHEMA_V1),)

FILE_SQL = ("INSERT OR REPLACE INTO ast_files (root, path, dir, run_id, language, size, mtime_ns, sha, status, "
            "lines, max_depth, docstring, counts, error, error_line) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
TOUCH_SQL = "UPDATE ast_files SET size=?, mtime_ns=?, run_id=? WHERE root=? AND path=?"
SYMBOL_SQL = "INSERT OR IGNORE INTO ast_symbols (root, path, name, kind, line, parent) VALUES (?,?,?,?,?,?)"
IMPORT_SQL = "INSERT OR IGNORE INTO ast_imports (root, path, module) VALUES (?,?,?)"
FORGET_SQL = (
    "DELETE FROM ast_symbols WHERE root=? AND path=?",
    "DELETE FROM ast_imports WHERE root=? AND path=?",
)
REMOVE_SQL = (*FORGET_SQL, "DELETE FROM ast_files WHERE root=? AND path=?")
