"""The findings view an incident responder works in: readable columns, filter, sort, group, export."""

from __future__ import annotations

import json
import stat
from dataclasses import replace

from console_fakes import FixedStore, ScriptedSource, fixed_app, make_snapshot, settle
from textual.widgets import Input

from console.panes.header import RunHeader
from console.panes.keybar import KeyBar
from console.panes.rowtable import GroupLine, RowTable
from console.screens.dialogs import ExportScreen
from console.views.ioc_scan import FindingsScreen

PACKAGES = ["@ctrl/tinycolor", "@crowdstrike/commitlint", "ngx-bootstrap", "@ctrl/deluge"]


class ManyFindings(FixedStore):
    """A few hundred findings: long repository names and deep paths, as a real org has."""

    async def findings(self, run_id: int, after_id: int = 0, limit: int = 200) -> list[dict]:
        rows = [{"id": i, "repo": f"acme-corporation/service-with-a-long-name-{i % 37}",
                 "file_path": f"packages/frontend/apps/web-{i % 5}/node_modules/.pnpm/lock/package-lock.json",
                 "line_number": 10 + i, "package_name": PACKAGES[i % 4], "version": f"4.1.{i % 3}",
                 "ecosystem": "npm", "ioc_source": "shai-hulud-2-packages.csv",
                 "kind": "declared" if i % 5 == 0 else "locked"} for i in range(1, 301)]
        return [r for r in rows if r["id"] > after_id][:limit]


async def open_findings(pilot):
    await settle(pilot)
    await pilot.press("f")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, FindingsScreen)
    return screen


async def test_version_kind_and_ecosystem_fit_at_120_and_package_names_stay_whole_at_80():
    for size in ((120, 40), (80, 24)):
        app = fixed_app(store=ManyFindings())
        async with app.run_test(size=size) as pilot:
            screen = await open_findings(pilot)
            table = screen.query_one(RowTable)
            assert len(table.lines) == 300
            line = table.render_line(1).text
            if size == (120, 40):
                assert {"package_name", "version", "kind", "ecosystem", "repo", "file_path"} <= set(
                    table.shown_columns)
                assert "…" in line and "package-lock.json" in line     # the path cut in its middle
            row = table.lines[0]
            assert row["package_name"] in line and row["version"] in line   # never cut


async def test_filter_sort_group_and_the_count_in_the_title():
    app = fixed_app(store=ManyFindings())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_findings(pilot)
        assert "300 findings" in str(screen.query_one("#findings-title").render())
        await pilot.press("slash", *"ngx web-3")
        await pilot.pause()
        shown = screen.shown
        assert shown and all(r["package_name"] == "ngx-bootstrap" and "web-3" in r["file_path"] for r in shown)
        assert f"{len(shown)} of 300 findings" in str(screen.query_one("#findings-title").render())
        await pilot.press("enter", "s")                  # keep the filter; sort by the next column (repo)
        await pilot.pause()
        repos = [r["repo"] for r in screen.shown]
        assert repos == sorted(repos, key=str.lower)
        await pilot.press("escape")                      # clears the filter
        await pilot.pause()
        assert len(screen.shown) == 300
        await pilot.press("g")                           # group by package
        await pilot.pause()
        headings = [line.text for line in screen.query_one(RowTable).lines if isinstance(line, GroupLine)]
        assert len(headings) == 4 and all("75 findings in" in h for h in headings)


async def test_e_exports_what_the_filter_shows_to_a_private_csv_or_json(tmp_path):
    app = fixed_app(store=ManyFindings(), export_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_findings(pilot)
        await pilot.press("slash", *"deluge", "enter")
        await pilot.pause()
        expected = [(r["repo"], r["file_path"], r["package_name"]) for r in screen.shown]
        for name in ("out.csv", "out.json"):
            await pilot.press("e")
            await pilot.pause()
            assert isinstance(app.screen, ExportScreen)
            app.screen.query_one(Input).value = str(tmp_path / name)
            await pilot.press("enter")
            await settle(pilot)
        text = (tmp_path / "out.csv").read_text().splitlines()
        assert text[0].startswith("repo,file_path,line_number,package_name,version")
        assert len(text) == 1 + len(expected) == 1 + 75
        rows = json.loads((tmp_path / "out.json").read_text())
        assert [(r["repo"], r["file_path"], r["package_name"]) for r in rows] == expected
        for name in ("out.csv", "out.json"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


async def test_f_for_results_is_in_the_footer_and_the_header_counts_findings():
    snap = replace(make_snapshot(), counters={"findings": 155})
    app = fixed_app(source=ScriptedSource(snap))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert any((keys, label) == ("f", "results") for keys, label, _a, _e in app.screen.query_one(KeyBar).entries())
        assert "155 findings (f)" in str(app.screen.query_one(RunHeader).render())
