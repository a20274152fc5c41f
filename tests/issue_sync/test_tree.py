"""Reading a planning tree: every bad input is one error naming the file and line, before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import InputError
from engine.jobs.issue_sync.sample import write_sample_tree
from engine.jobs.issue_sync.tree import MAX_SUB_ISSUES, load_tree


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def small(root: Path) -> Path:
    write(root, "prds/app.md", "---\nname: app\ntitle: The app\n---\nWhy.\n")
    write(root, "epics/app/epic.md", "---\nname: app\nstatus: open\n---\nHow.\n")
    write(root, "epics/app/1.md", "---\nname: one\ntitle: First\n---\nDo it.\n")
    write(root, "epics/app/2.md", "---\nname: two\ntitle: Second\ndepends_on: [1]\n---\nThen this.\n")
    return root


def error_of(root: Path) -> str:
    with pytest.raises(InputError) as caught:
        load_tree(root)
    return str(caught.value)


def test_a_tree_gives_parents_dependencies_and_stable_ids(tmp_path):
    tree = load_tree(small(tmp_path))
    assert set(tree.nodes) == {"prd:app", "epic:app", "task:app/1", "task:app/2"}
    assert tree.nodes["epic:app"].parent == "prd:app"
    assert tree.nodes["task:app/2"].parent == "epic:app"
    assert tree.nodes["task:app/2"].depends_on == ["task:app/1"]
    assert tree.nodes["task:app/1"].title == "First"


def test_the_claude_folder_is_read_too(tmp_path):
    small(tmp_path / ".claude")
    assert len(load_tree(tmp_path).nodes) == 4


def test_a_cycle_names_the_file_and_line(tmp_path):
    small(tmp_path)
    write(tmp_path, "epics/app/1.md", "---\nname: one\n\ndepends_on: [2]\n---\nx\n")
    message = error_of(tmp_path)
    assert "epics/app/1.md:4" in message and "cycle" in message


def test_a_dangling_dependency_names_the_file_and_line(tmp_path):
    small(tmp_path)
    write(tmp_path, "epics/app/2.md", "---\nname: two\ndepends_on: [7]\n---\nx\n")
    assert error_of(tmp_path).startswith("epics/app/2.md:3: depends_on '7'")


def test_a_duplicate_id_names_both_files(tmp_path):
    small(tmp_path)
    write(tmp_path, "prds/other.md", "---\nname: app\n---\nx\n")
    message = error_of(tmp_path)
    assert "duplicate id 'prd:app'" in message and "prds/app.md" in message


@pytest.mark.parametrize(("text", "where"), [
    ("---\nname: one\nlabels: [a, b\n---\nx\n", "epics/app/1.md:4"),      # bad YAML
    ("---\nname: one\nparallel: maybe\n---\nx\n", "epics/app/1.md:3"),   # wrong type
    ("---\n- a list\n---\nx\n", "epics/app/1.md:2"),                      # not a mapping
])
def test_bad_frontmatter_names_the_file_and_line(tmp_path, text, where):
    small(tmp_path)
    write(tmp_path, "epics/app/1.md", text)
    assert error_of(tmp_path).startswith(where)


def test_more_than_100_tasks_go_under_continuation_issues_of_their_epic(tmp_path):
    tree = load_tree(write_sample_tree(tmp_path, epics=1, tasks=250))
    children = tree.children()
    assert all(len(kids) <= MAX_SUB_ISSUES for kids in children.values())
    parts = [n for n in tree.nodes.values() if n.kind == "part"]
    assert len(parts) == 2 and all(p.parent == "epic:auth" for p in parts)
    tasks = [n for n in tree.nodes.values() if n.kind == "task"]
    assert len(tasks) == 250
    assert all(t.parent == "epic:auth" or tree.nodes[t.parent].parent == "epic:auth" for t in tasks)
    assert tree.notes and "250 sub-issues do not fit" in tree.notes[0]


def test_the_shipped_example_has_a_prd_three_epics_and_500_tasks():
    tree = load_tree(Path(__file__).parents[2] / "sample_configs" / "planning")
    kinds = [n.kind for n in tree.nodes.values()]
    assert kinds.count("prd") == 1 and kinds.count("epic") == 3 and kinds.count("task") >= 500
