"""issue-sync's own tables, as the store's migrations of this kind, and the statements that write them.

All keyed by repository, so one database can sync several repos:

* ``issue_sync_map`` — stable id → issue number, issue id, content hash, URL:
  the sync map. One row per item, written in the same commit as the item's
  result, so a crash loses neither or both.
* ``issue_sync_intents`` — a create about to be sent, committed *before* the
  POST. A row without a map row is an issue that may exist: it is looked up
  by its hidden marker before anything is created again.
* ``issue_sync_links`` — a child linked under a parent (sub-issue or checklist).
* ``issue_sync_results`` — per run: what happened to each item (created,
  updated, unchanged, reconciled) and its number: the results view.
* ``issue_sync_progress`` — per run: pace, write budget and expected finish.

Version 1 keeps ``IF NOT EXISTS``: databases written before the kind had
migrations already hold these tables (the kind created them itself), and the
first migration adopts them as they are.
"""

from __future__ import annotations

from engine.kinds import Migration

MIGRATIONS = (
    Migration(1, """
CREATE TABLE IF NOT EXISTS issue_sync_map (repo TEXT NOT NULL, sid TEXT NOT NULL, number INTEGER NOT NULL,
    issue_id INTEGER NOT NULL, content_hash TEXT NOT NULL, url TEXT, path TEXT, updated_at REAL NOT NULL,
    PRIMARY KEY (repo, sid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS issue_sync_intents (repo TEXT NOT NULL, sid TEXT NOT NULL, run_id INTEGER,
    sent_at REAL NOT NULL, PRIMARY KEY (repo, sid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS issue_sync_links (repo TEXT NOT NULL, child TEXT NOT NULL, parent TEXT NOT NULL,
    mode TEXT NOT NULL, PRIMARY KEY (repo, child)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS issue_sync_results (run_id INTEGER NOT NULL, sid TEXT NOT NULL,
    action TEXT NOT NULL, number INTEGER, PRIMARY KEY (run_id, sid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS issue_sync_progress (run_id INTEGER PRIMARY KEY, at REAL NOT NULL, data TEXT NOT NULL);
"""),
)

MAP_SQL = ("INSERT OR REPLACE INTO issue_sync_map (repo, sid, number, issue_id, content_hash, url, path, updated_at) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
RESULT_SQL = "INSERT OR REPLACE INTO issue_sync_results (run_id, sid, action, number) VALUES (?, ?, ?, ?)"
LINK_SQL = "INSERT OR REPLACE INTO issue_sync_links (repo, child, parent, mode) VALUES (?, ?, ?, ?)"
PROGRESS_SQL = "INSERT OR REPLACE INTO issue_sync_progress (run_id, at, data) VALUES (?, ?, ?)"
INTENT_SQL = "INSERT OR REPLACE INTO issue_sync_intents (repo, sid, run_id, sent_at) VALUES (?, ?, ?, ?)"
FORGET_INTENT_SQL = "DELETE FROM issue_sync_intents WHERE repo=? AND sid=?"
