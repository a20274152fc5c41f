"""Honest verdicts: coverage read from the store decides what every format may claim."""

from __future__ import annotations

import csv
import io
import json

from engine.jobs.ioc_scan.coverage import coverage
from engine.jobs.ioc_scan.models import IOCMatch
from engine.jobs.ioc_scan.output import CSV_COLUMNS, render, sarif_by_repo
from engine.store import Store
from engine.store_rows import ITEM_INSERT_SQL

CLEAN = "No compromised packages found."
MATCH = IOCMatch("acme/web", "package-lock.json", 7, "@ctrl/tinycolor", "4.1.1", "npm", "iocs.csv", "locked")


async def make_run(store: Store, items: list[tuple[str, str, str | None]], *, state: str = "completed",
                   message: str | None = None, planned: bool = True, parent: int | None = None,
                   counters: dict | None = None) -> int:
    """A run in ``state`` whose items (key, state, last error) are as given."""
    run_id = await store.create_run("ioc-scan", {"api_url": "http://sim"}, {}, parent_id=parent, planned=planned)
    await store.write_many([(ITEM_INSERT_SQL, [(run_id, seq, key, "{}", 0, "read")
                                               for seq, (key, _, _) in enumerate(items, 1)])])
    for key, item_state, error in items:
        await store.write("UPDATE items SET state=?, last_error=? WHERE run_id=? AND key=?",
                          (item_state, error, run_id, key))
    await store.write("UPDATE runs SET state=?, message=?, stats=? WHERE id=?",
                      (state, message, json.dumps({"counters": counters or {}}), run_id))
    return run_id


async def test_a_completed_run_that_scanned_everything_is_the_only_clean_verdict(tmp_path):
    async with await Store.open(tmp_path / "c.db") as store:
        run = await make_run(store, [("repo:acme/a", "done", None), ("repo:acme/b", "done", None),
                                     ("file:acme/a:package-lock.json", "done", None)],
                             counters={"excluded_archived": 2, "excluded_forks": 1})
        cov = await coverage(store, run)
        assert cov.complete and cov.repos_scanned == {"acme/a", "acme/b"}
        table = render([], "table", coverage=cov)
        assert CLEAN in table and "All 2 repositories in scope scanned" in table
        assert "2 archived and 1 forks" in table          # the default scope is said, not silent
        await store.write("INSERT INTO file_errors (run_id, repo, file_path, reason, line) VALUES (?, ?, ?, ?, ?)",
                          (run, "acme/a", "yarn.lock", "bad", 3))
        cov = await coverage(store, run)
        assert cov.complete and "1 file(s) could not be parsed" in cov.verdict(0)
        document = json.loads(render([], "json", coverage=cov))
        assert document["complete"] is True and document["coverage"]["repos_not_scanned"] == []
        sarif = json.loads(render([], "sarif", coverage=cov))["runs"][0]
        assert sarif["invocations"][0]["executionSuccessful"] is True


async def test_failed_pending_and_partly_scanned_repos_make_it_incomplete_in_every_format(tmp_path):
    async with await Store.open(tmp_path / "i.db") as store:
        run = await make_run(store, [
            ("repo:acme/a", "done", None),
            ("repo:acme/missing", "failed", "GitHub answered 404 to GET /repos/acme/missing: Not Found"),
            ("repo:acme/b", "done", None),
            ("file:acme/b:yarn.lock", "failed", "server error 502"),
            ("repo:acme/c", "pending", None),
        ], state="paused", message="stopped by SIGINT; resume to continue")
        cov = await coverage(store, run)
        assert not cov.complete and cov.repos_scanned == {"acme/a"}
        assert [(g["repo"], g["reason"].split(":")[0]) for g in cov.repos_not_scanned] == [
            ("acme/b", "1 file(s) not scanned"), ("acme/c", "not reached (the run stopped before it)"),
            ("acme/missing", "GitHub answered 404 to GET /repos/acme/missing")]
        for findings in ([], [MATCH]):
            table = render(findings, "table", coverage=cov)
            assert CLEAN not in table and "INCOMPLETE" in table and "paused: stopped by SIGINT" in table
            assert "acme/missing" in table and "404" in table
            assert "1 repository " in table and "not reached (the run stopped before them; resume it)" in table
        document = json.loads(render([MATCH], "json", coverage=cov))
        assert document["complete"] is False and document["verdict"].startswith("INCOMPLETE")
        assert document["coverage"]["repos_scanned"] == 1
        not_scanned = {g["repo"] for g in document["coverage"]["repos_not_scanned"]}
        assert not_scanned == {"acme/b", "acme/c", "acme/missing"}
        assert document["coverage"]["files_not_scanned"] == [
            {"repo": "acme/b", "path": "yarn.lock", "reason": "server error 502", "run_id": run}]
        invocation = json.loads(render([MATCH], "sarif", coverage=cov))["runs"][0]["invocations"][0]
        assert invocation["executionSuccessful"] is False
        texts = [n["message"]["text"] for n in invocation["toolExecutionNotifications"]]
        assert texts[0].startswith("INCOMPLETE") and any("acme/missing" in t for t in texts)
        # CSV stays a plain table (the CLI writes its coverage beside it)
        assert render([MATCH], "csv", coverage=cov).splitlines()[0] == ",".join(CSV_COLUMNS)


async def test_a_run_that_failed_before_listing_anything_is_incomplete(tmp_path):
    async with await Store.open(tmp_path / "f.db") as store:
        run = await make_run(store, [], state="failed", planned=False,
                             message="GitHub answered 404 to GET /orgs/nope/repos: Not Found")
        cov = await coverage(store, run)
        verdict = render([], "table", coverage=cov)
        assert CLEAN not in verdict and "INCOMPLETE" in verdict and "/orgs/nope/repos" in verdict
        assert "listing did not finish" in verdict


async def test_a_listing_item_that_failed_is_a_target_not_listed(tmp_path):
    async with await Store.open(tmp_path / "t.db") as store:
        run = await make_run(store, [("repo:acme/a", "done", None), ("org:acme:page:2", "failed", "server error")])
        cov = await coverage(store, run)
        assert not cov.complete
        assert cov.to_dict()["targets_not_listed"] == [{"target": "org:acme:page:2", "reason": "server error",
                                                        "run_id": run}]


async def test_a_replay_that_scanned_the_failed_items_completes_the_family(tmp_path):
    async with await Store.open(tmp_path / "r.db") as store:
        parent = await make_run(store, [("repo:acme/a", "done", None), ("repo:acme/b", "failed", "server error")])
        child = await make_run(store, [("repo:acme/b", "failed", "server error again")], parent=parent)
        cov = await coverage(store, child)                # asked from the replay: the whole family
        assert cov.run_id == parent and cov.runs == [parent, child] and not cov.complete
        assert cov.repos_not_scanned == [{"repo": "acme/b", "reason": "server error again", "run_id": child}]
        grandchild = await make_run(store, [("repo:acme/b", "done", None)], parent=child)
        cov = await coverage(store, parent)
        assert cov.runs == [parent, child, grandchild] and cov.complete
        assert cov.repos_scanned == {"acme/a", "acme/b"}


async def test_findings_say_which_run_found_them_in_json_csv_sarif_and_table(tmp_path):
    async with await Store.open(tmp_path / "w.db") as store:
        parent = await make_run(store, [("repo:acme/web", "done", None)])
        child = await make_run(store, [("repo:acme/api", "done", None)], parent=parent)
        cov = await coverage(store, parent)
        other = IOCMatch("acme/api", "poetry.lock", 3, "ultralytics", "8.3.41", "pypi", "iocs.csv", "locked")
        found_by = {MATCH: parent, other: child}
        document = json.loads(render([MATCH, other], "json", coverage=cov, found_by=found_by))
        assert {(m["repo"], m["run_id"]) for m in document["matches"]} == {("acme/web", parent),
                                                                           ("acme/api", child)}
        rows = list(csv.DictReader(io.StringIO(render([MATCH, other], "csv", coverage=cov, found_by=found_by))))
        assert {(r["repo"], r["run_id"]) for r in rows} == {("acme/web", str(parent)), ("acme/api", str(child))}
        sarif = json.loads(render([MATCH, other], "sarif", coverage=cov, found_by=found_by))["runs"][0]
        assert {r["properties"]["runId"] for r in sarif["results"]} == {parent, child}
        table = render([MATCH, other], "table", coverage=cov, found_by=found_by)
        header = next(line for line in table.splitlines() if "Repository" in line)
        assert header.split()[-1] == "Run" or header.rstrip(" ┃").endswith("Run")
        row = next(line for line in table.splitlines() if "ultralytics" in line)
        assert f" {child} " in row


async def test_sarif_per_repository_for_code_scanning_uploads(tmp_path):
    async with await Store.open(tmp_path / "s.db") as store:
        run = await make_run(store, [("repo:acme/web", "done", None), ("repo:acme/clean", "done", None),
                                     ("repo:acme/half", "done", None), ("file:acme/half:yarn.lock", "failed", "502"),
                                     ("repo:acme/missing", "failed", "404")])
        cov = await coverage(store, run)
        documents = sarif_by_repo([MATCH], [], {"run_id": run}, coverage=cov)
        # a document per scanned repo (an empty one closes fixed alerts), none for a repo never scanned
        assert sorted(documents) == ["acme/clean", "acme/half", "acme/web"]
        web = json.loads(documents["acme/web"])["runs"][0]
        assert web["automationDetails"]["id"] == f"batchdeck/ioc-scan/{run}"
        uri = web["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        assert uri == "package-lock.json" and not web["results"][0]["message"]["text"].startswith("acme/")
        assert web["invocations"][0]["executionSuccessful"] is True
        assert json.loads(documents["acme/clean"])["runs"][0]["results"] == []
        half = json.loads(documents["acme/half"])["runs"][0]["invocations"][0]
        assert half["executionSuccessful"] is False
        assert any("yarn.lock" in n["message"]["text"] for n in half["toolExecutionNotifications"])


HOSTILE = "evil\x1b]0;pwned\x07dir\x1b[2J/package-lock.json"


def test_terminal_escapes_in_repository_text_are_made_visible_in_table_and_csv():
    match = IOCMatch("acme/x\x1b[31m", HOSTILE, 5, "ms\x07", "2.1.3", "npm", "iocs.csv", "locked")
    for fmt in ("table", "csv"):
        text = render([match], fmt, [{"repo": "acme/x", "file_path": HOSTILE, "reason": "bad \x1b[2J", "line": 1}])
        assert "\x1b" not in text and "\x07" not in text
        row = next(line for line in text.splitlines() if "pwned" in line and "2.1.3" in line)
        assert "\u241b]0;pwned\u2407dir\u241b[2J/package-lock.json" in row      # ␛ and ␇: the row is still there
    # JSON and SARIF keep the exact data (JSON escapes the controls itself)
    document = render([match], "json")
    assert "\x1b" not in document and json.loads(document)["matches"][0]["file_path"] == HOSTILE
    sarif = json.loads(render([match], "sarif"))
    assert sarif["runs"][0]["results"][0]["properties"]["repository"] == "acme/x\x1b[31m"


def test_sarif_file_names_stay_inside_the_directory():
    from engine.jobs.ioc_scan.output import sarif_file_name

    assert sarif_file_name("acme/api.v2") == "acme/api.v2.sarif"
    for hostile in ("../..", "acme/../../etc", "acme/..", "/abs", "acme/a\x1b]0;x\x07"):
        name = sarif_file_name(hostile)
        parts = name.split("/")
        assert len(parts) == 2 and ".." not in parts and all(parts) and "\x1b" not in name
