"""Results views of job kinds: one Textual screen per kind, found through entry points.

A kind's console view is registered under the ``batchdeck.views`` entry-point group
(:data:`engine.kinds.VIEW_ENTRY_POINT_GROUP`), apart from the kind itself, so that
loading a kind (the engine, the CLI, a headless run) never imports Textual::

    [project.entry-points."batchdeck.views"]
    ioc-scan = "console.views.ioc_scan:view"

The entry point names a :class:`ViewFactory`: ``view(session, run)`` returns the screen
the console pushes when the operator opens the results of ``run`` (key ``f`` on the
main screen: the selected run in the browser, else the watched run).

What a view may rely on, and what it must do:

* ``session`` is the console's :class:`~console.session.ConsoleSession`. A view reads its
  data with ``await session.kind_query(run.id, "query-name", **kw)``, which runs the
  named query of the run's :class:`~engine.kinds.JobKind` (``JobKind.queries``) over the
  store. A view never imports ``engine.store`` or ``engine.runner`` (an import-linter
  contract checks it).
* Queries run in a worker: ``batchdeck_app(self).run_task(coro, name="load ...")`` from
  ``on_mount`` (``console.appref.batchdeck_app``: ``self.app`` typed as the console's app);
  a failure there becomes one plain-text notification in the app (``report_error``). Set
  the rows from the worker coroutine (or post them to the screen in a typed message).
  Keep what is read bounded (keyset pages up to a maximum, as the findings view does).
* Every value read from the store is untrusted text: show it with
  ``engine.safetext.visible`` (strings) or ``safe_text`` (renderables), never as markup.
  ``console.panes.rowtable.RowTable`` does this for tables.
* Keys come from the one command table: ``COMMAND_SCOPE = "results"`` and
  ``BINDINGS = commands.bindings("results")`` give ``/`` filter, ``s`` sort, ``g`` group,
  ``e`` export and ``esc`` back (actions ``filter``, ``sort``, ``group``, ``export``,
  ``back``; ``KeyBar("results")`` is the footer). ``esc`` goes back with
  ``self.app.pop_screen()``; ``e`` exports what is shown: define
  ``export_rows() -> (name, list[dict])`` and post
  ``console.messages.ExportRequested(*self.export_rows())``.

Examples: ``console/views/ioc_scan.py`` (findings) and ``tests/console/tally_kind.py``
(the smallest complete kind + view, registered by ``tests/console/test_kind_views.py``).
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Protocol

from engine.errors import InputError
from engine.kinds import VIEW_ENTRY_POINT_GROUP

if TYPE_CHECKING:
    from textual.screen import Screen

    from console.session import ConsoleSession
    from engine.models import RunInfo


class ViewFactory(Protocol):
    """What a ``batchdeck.views`` entry point names: the results screen of one run."""

    def __call__(self, session: ConsoleSession, run: RunInfo, /) -> Screen: ...


def installed_views() -> dict[str, EntryPoint]:
    """Views installed under the entry-point group, by kind name (not loaded)."""
    return {ep.name: ep for ep in entry_points(group=VIEW_ENTRY_POINT_GROUP)}


def load_view(kind_name: str) -> ViewFactory | None:
    """The view factory registered for ``kind_name``; None when the kind has no view.

    A registered entry point that cannot be loaded, or does not name a callable, is an
    :class:`InputError` (one line naming the kind and the entry point), not a traceback."""
    entry = installed_views().get(kind_name)
    if entry is None:
        return None
    try:
        factory = entry.load()
    except Exception as exc:   # a broken plugin: say which, in one line
        raise InputError(f"view of job kind {kind_name!r} ({entry.value}) cannot be loaded: "
                         f"{type(exc).__name__}: {exc}") from exc
    if not callable(factory):
        raise InputError(f"view of job kind {kind_name!r} ({entry.value}) is not callable")
    return factory
