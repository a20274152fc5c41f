"""The console view of an ast-index run: a finished run's files, as plain text, with filter,
symbol lookup and a file's symbols; opened through the ``batchdeck.views`` entry point."""

from __future__ import annotations

from pathlib import Path

from ast_helpers import config, run_index
from textual.app import App
from textual.widgets import Input, Static

from console.messages import ExportRequested
from console.panes.rowtable import RowTable
from console.session import ConsoleSession
from console.views import load_view
from engine.api import Engine
from engine.jobs.ast_index.generate import generate_tree
from engine.jobs.ast_index.job import build_spec

HOSTILE = "\x1b]0;x\x07.py"      # a file name that would retitle the terminal if written raw


class Host(App):
    def __init__(self, screen) -> None:
        super().__init__()
        self.view = screen
        self.exports: list[ExportRequested] = []

    def on_mount(self) -> None:
        self.push_screen(self.view)

    def on_export_requested(self, message: ExportRequested) -> None:
        self.exports.append(message)


def lines_of(table: RowTable) -> list[str]:
    return ["".join(segment.text for segment in table.render_line(y))
            for y in range(table.scrollable_content_region.height)]


async def test_the_view_browses_files_and_symbols_as_plain_text(tmp_path):
    root = tmp_path / "tree"
    generate_tree(str(root), 12, specials=False)
    (root / HOSTILE).write_text("def hostile():\n    pass\n")
    (root / "[bold].py").write_text("import os\n")
    (root / "broken.go").write_text("package p\n\nfunc F( {\n}\n")
    db = tmp_path / "index.db"
    run_id, state = await run_index(db, build_spec(str(root)))
    assert state == "completed"

    async with await Engine.open(db, config()) as engine:
        run = await engine.store.require_run(run_id)
        app = Host(load_view("ast-index")(ConsoleSession(engine), run))
        async with app.run_test(size=(160, 40)) as pilot:
            view = app.view
            await view.load_worker.wait()
            await pilot.pause()
            files = view.query_one("#ix-files", RowTable)
            shown = "\n".join(lines_of(files))
            assert "␛]0;x␇.py" in shown and "\x1b" not in shown and "\x07" not in shown
            assert "[bold].py" in shown
            assert len(view.shown) == 15                      # every file of the index, one row each
            assert "src/d00000/m000003.go" in shown
            head = str(view.query_one("#ix-head", Static).render())
            assert "files/s per worker" in head and "batches of" in head and "1 file(s) with errors" in head

            # `/` filters: only the file with a syntax error, its line in the error column
            await pilot.press("slash")
            view.query_one(Input).value = "status:syntax"
            await pilot.pause()
            assert [r["path"] for r in view.shown] == ["broken.go"]
            assert "syntax error, line 3" in "\n".join(lines_of(files))
            await pilot.press("escape")                       # closes and clears the filter
            await pilot.pause()
            assert len(view.shown) == 15 and app.screen is view

            # `l`: where a symbol is defined (the hostile file, shown literally)
            await pilot.press("l")
            box = view.query_one(Input)
            assert box.has_focus
            box.value = "hostile"
            await pilot.press("enter")
            await pilot.pause()                               # the key's handler starts the query...
            await app.workers.wait_for_complete()             # ...which is awaited, not slept on
            await pilot.pause()
            symbols = view.query_one("#ix-symbols", RowTable)
            assert [(r["name"], r["path"], r["line"]) for r in view.shown] == [("hostile", HOSTILE, 1)]
            listed = "\n".join(lines_of(symbols))
            assert "␛]0;x␇.py" in listed and "\x1b" not in listed

            # esc back to the files; enter opens the selected file's symbols and imports
            await pilot.press("escape")
            await pilot.pause()
            files.cursor = [r["path"] for r in view.shown].index("[bold].py")
            await pilot.press("enter")
            await pilot.pause()                               # the key's handler starts the query...
            await app.workers.wait_for_complete()             # ...which is awaited, not slept on
            await pilot.pause()
            assert [(r["kind"], r["name"]) for r in view.shown] == [("import", "os")]
            await pilot.press("e")                            # exports exactly what is shown
            await pilot.pause()
            [export] = app.exports
            assert export.rows == [{"kind": "import", "name": "os", "line": None, "parent": "", "path": "[bold].py"}]
            await pilot.press("escape")                       # back to the files, then out of the view
            await pilot.pause()
            assert app.screen is view and not view.in_symbols
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is not view


async def test_the_head_follows_a_run_still_parsing(tmp_path):
    root = tmp_path / "tree"
    generate_tree(str(root), 40, specials=False)
    hold = root / "zz_last/hold.py"               # the last file (order: path): its batch waits for us
    hold.parent.mkdir()
    hold.write_text("held = True\n")
    db = tmp_path / "index.db"
    spec = build_spec(str(root), order="path", test_options={"hold_marker": "hold.py"})
    async with await Engine.open(db, config()) as engine:
        run_id = await engine.create_run("ast-index", spec, config())
        handle = await engine.start(run_id)
        try:
            run = await engine.store.require_run(run_id)
            app = Host(load_view("ast-index")(ConsoleSession(engine), run))
            async with app.run_test(size=(160, 40)) as pilot:
                view = app.view
                await view.load_worker.wait()
                await pilot.pause()
                head = str(view.query_one("#ix-head", Static).render())
                assert "the index is incomplete" in head          # planning, or the held batch pending
                assert view._head_timer is not None

                Path(str(hold) + ".release").touch()                        # the gate opens
                assert (await handle.wait()).value == "completed"
                view._refresh_head()                                        # what the timer does
                await pilot.pause()
                await app.workers.wait_for_complete()
                await pilot.pause()
                head = str(view.query_one("#ix-head", Static).render())
                assert "incomplete" not in head and "files/s per worker" in head
                assert "(completed)" in str(view.query_one("#ix-title", Static).render())
        finally:
            if not handle.task.done():
                await handle.stop("test over")


async def test_f_in_the_console_opens_the_index_view_of_an_index_run(tmp_path):
    from console.app import BatchdeckApp
    from console.views.ast_index import AstIndexView

    root = tmp_path / "tree"
    generate_tree(str(root), 6, specials=False)
    (root / HOSTILE).write_text("x = 1\n")
    db = tmp_path / "index.db"
    run_id, _ = await run_index(db, build_spec(str(root)))
    async with await Engine.open(db, config()) as engine:
        app = BatchdeckApp(engine, run_id=run_id, refresh_hz=0, export_dir=tmp_path)
        async with app.run_test(size=(140, 40)) as pilot:
            for _ in range(3):
                await app.workers.wait_for_complete()
                await pilot.pause()
            await pilot.press("f")
            for _ in range(3):
                await app.workers.wait_for_complete()
                await pilot.pause()
            assert isinstance(app.screen, AstIndexView)
            shown = "\n".join(lines_of(app.screen.query_one("#ix-files", RowTable)))
            assert "␛]0;x␇.py" in shown and "\x1b" not in shown and len(app.screen.shown) == 7
