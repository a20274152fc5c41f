"""``batchdeck sync``: the dry run sends nothing and says how long it would take; bad input exits 2."""

from __future__ import annotations

import shutil
from pathlib import Path

from console.cli import main
from engine.jobs.issue_sync.sample import write_sample_tree

EXAMPLE = Path(__file__).parents[2] / "sample_configs" / "planning"


def test_dry_run_of_the_example_says_what_and_how_long_and_sends_nothing(tmp_path, capsys):
    # an API URL nothing listens on: any request would fail the command
    code = main(["sync", str(EXAMPLE), "--repo", "acme/plans", "--dry-run", "--db", str(tmp_path / "d.db"),
                 "--api-url", "http://127.0.0.1:9"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "would create 517" in out and "would link as sub-issues 516" in out
    assert "1040 content-creating requests" in out and "2.0 h" in out      # 500 an hour: two hours
    assert "continuation issue" in err


def test_a_cycle_is_one_line_naming_the_file_and_exits_2(tmp_path, capsys):
    root = write_sample_tree(tmp_path / "t", epics=1, tasks=8)
    (root / "epics/auth/001.md").write_text("---\nname: one\ndepends_on: [8]\n---\nx\n")
    (root / "epics/auth/008.md").write_text("---\nname: eight\ndepends_on: [1]\n---\nx\n")
    code = main(["sync", str(root), "--repo", "acme/plans", "--db", str(tmp_path / "d.db"),
                 "--api-url", "http://127.0.0.1:9"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "epics/auth/001.md:3: dependency cycle" in err


def test_a_bad_repo_exits_2(tmp_path, capsys):
    root = Path(shutil.copytree(EXAMPLE / "prds", tmp_path / "t" / "prds")).parent
    assert main(["sync", str(root), "--repo", "not-a-repo", "--dry-run", "--db", str(tmp_path / "d.db")]) == 2
    assert "--repo 'not-a-repo': expected owner/name" in capsys.readouterr().err


def test_the_config_file_sets_link_mode_labels_and_pace_and_a_bad_value_is_one_line(tmp_path, capsys):
    root = write_sample_tree(tmp_path / "t", epics=1, tasks=3)
    config = tmp_path / "team.yaml"
    config.write_text("issue_sync:\n  links: checklist\n  add_labels: 'synced, plan'\n"
                      "  pacing:\n    creates_per_minute: 10\n")
    args = ["sync", str(root), "--repo", "acme/plans", "--dry-run", "--db", str(tmp_path / "d.db"),
            "--api-url", "http://127.0.0.1:9", "--config", str(config)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "would write checklists into 2" in out and "would link as sub-issues" not in out   # links: checklist
    labels = next(line for line in out.splitlines() if "labels/milestones among" in line)
    assert "plan" in labels and "synced" in labels                     # added to every issue
    assert "at 10/min, 500/h" in out
    assert main([*args, "--links", "sub-issues"]) == 0                 # a flag overrides the file
    assert "would link as sub-issues 4" in capsys.readouterr().out

    config.write_text("issue_sync:\n  pacing:\n    creates_per_minute: 500\n")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "issue_sync.pacing.creates_per_minute = 500" in err and "1..80" in err
