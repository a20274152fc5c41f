"""The command table, keymaps, theme files and the batch filter: what a user configures or types."""

from __future__ import annotations

import pytest

from console.app import BatchdeckApp
from console.commands import COMMANDS, bindings, markdown_table, validate_keymap
from console.panes import fmt
from console.panes.batches import batch_matches
from console.screens.main import MainScreen
from console.themes import COLOR_KEYS, chart_colours, load_theme, theme_from_file, theme_names
from engine.errors import InputError
from engine.models import BatchState, BatchView


def test_one_table_feeds_the_screen_bindings_with_unique_ids_and_keys():
    ids = [c.id for c in COMMANDS]
    assert len(ids) == len(set(ids))
    for screen in ("main", "findings", "items"):
        scoped = [k for c in COMMANDS if screen in c.screens for k in c.keys.split(",")]
        assert len(scoped) == len(set(scoped)), f"two commands share a default key on the {screen} screen"
    keys = [k for c in COMMANDS for k in c.keys.split(",")]
    assert [(b.id, b.key, b.action) for b in MainScreen.BINDINGS] == [(b.id, b.key, b.action) for b in bindings()]
    required = {"space", "p", "plus", "minus", "s", "R", "c", "e", "slash", "colon", "question_mark", "t",
                "1", "2", "3", "4", "5", "q", "escape"}
    assert required <= set(keys)


def test_markdown_key_table_lists_every_command():
    table = markdown_table()
    for c in COMMANDS:
        assert c.help.replace("|", "\\|") in table


@pytest.mark.parametrize(("keymap", "needle"), [
    ({"pauze": "x"}, "console.keymap.pauze: unknown binding id"),
    ({"pause_resume": ""}, "console.keymap.pause_resume: '' is not a key"),
    ({"pause_resume": 3}, "console.keymap.pause_resume: 3 is not a key"),
])
def test_bad_keymaps_fail_in_one_line_naming_the_id(keymap, needle):
    with pytest.raises(InputError) as caught:
        validate_keymap(keymap)
    assert needle in str(caught.value) and "\n" not in str(caught.value)


def test_app_refuses_a_bad_keymap_or_theme_before_starting():
    with pytest.raises(InputError, match="unknown binding id"):
        BatchdeckApp(None, keymap={"nope": "x"})
    with pytest.raises(InputError, match="no such theme.*dark, light, high-contrast"):
        BatchdeckApp(None, theme="solarised")


def test_builtin_themes_load_by_name_with_every_colour_and_chart_colours():
    assert theme_names()[:3] == ["dark", "light", "high-contrast"]
    for name in ("dark", "light", "high-contrast"):
        theme = load_theme(name)
        for key in COLOR_KEYS:
            assert getattr(theme, key), f"{name} lacks {key}"
        colours = chart_colours(theme.variables)
        assert len(colours.errors) >= 8
    assert load_theme("light").dark is False
    assert load_theme("dark").variables["chart-throughput"] != load_theme("light").variables["chart-throughput"]


def test_a_theme_file_given_by_path_is_used(tmp_path):
    path = tmp_path / "sunset.toml"
    path.write_text('dark = true\n[colors]\nprimary = "#ff8800"\n[chart]\nthroughput = "#00ff00"\n')
    app = BatchdeckApp(None, theme=str(path))
    assert app.theme == "sunset"
    assert app.get_theme("sunset").variables["chart-throughput"] == "#00ff00"


@pytest.mark.parametrize(("text", "needle"), [
    ('[colors]\nprimary = "#12"\n', 'colors.primary = \'#12\': not a colour'),
    ('[colors]\nprimary = "#123456"\nprimray = "#123456"\n', "colors.primray: unknown colour"),
    ('[colors]\nsecondary = "#123456"\n', "colors.primary is required"),
    ('dark = "yes"\n[colors]\nprimary = "#123456"\n', "dark = 'yes': expected true or false"),
    ('[colors\n', "not valid TOML"),
    ('[colors]\nprimary = "#123456"\n[chart]\nerrors = []\n', "chart.errors: expected a non-empty list"),
])
def test_bad_theme_files_name_the_file_and_key(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        theme_from_file(path)
    assert str(path) in str(caught.value) and needle in str(caught.value)


def batch(id_: int, state: BatchState, failed: int = 0) -> BatchView:
    return BatchView(id=id_, run_id=1, size=10, state=state, done=10 - failed, failed=failed, retried=0,
                     p95_ms=None, started_at=0.0)


def test_filter_terms_match_state_prefix_id_and_err():
    rows = [batch(101, BatchState.DONE), batch(102, BatchState.PARTIAL, 2), batch(203, BatchState.RUNNING)]
    assert [b.id for b in rows if batch_matches(b, ["part"])] == [102]
    assert [b.id for b in rows if batch_matches(b, ["#10"])] == [101, 102]
    assert [b.id for b in rows if batch_matches(b, ["err"])] == [102]
    assert [b.id for b in rows if batch_matches(b, ["10", "d"])] == [101]
    assert [b.id for b in rows if batch_matches(b, [])] == [101, 102, 203]


@pytest.mark.parametrize(("seconds", "shown"), [
    (None, "—"), (-3, "0s"), (9.4, "9s"), (245, "4m05s"), (7620, "2h07m"), (273_600, "3d04h")])
def test_durations_read_at_a_glance(seconds, shown):
    assert fmt.duration(seconds) == shown


async def test_run_console_rejects_bad_input_before_taking_the_screen():
    from console.app import run_console

    with pytest.raises(InputError, match="no such theme"):
        await run_console(None, theme="nope")
    with pytest.raises(InputError, match="unknown binding id"):
        await run_console(None, keymap={"nope": "x"})


def test_names_from_before_results_views_keep_working():
    """A keymap remapping the old ``findings`` binding remaps ``results``; a kind's view
    written for the old ``findings`` key scope gets the results keys."""
    assert validate_keymap({"findings": "F"}) == {"results": "F"}
    assert [b.id for b in bindings("findings")] == [b.id for b in bindings("results")] == [
        "export", "filter", "sort", "group", "back"]
