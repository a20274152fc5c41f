"""The console's app as its own type, for screens, panes and kind views.

Textual types ``node.app`` as a bare ``App``, so a type checker knows none of what
:class:`~console.app.BatchdeckApp` adds (``session``, ``run_task``, ``snapshot``...).
:func:`batchdeck_app` is the one place that says which app the console's widgets run in.

It is a cast, not a check: kind views are also hosted by a test's small ``App`` that
provides just what the view uses, and the console's layers forbid importing
``console.app`` below it at run time (the import here is for the type checker only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.message_pump import MessagePump

if TYPE_CHECKING:
    from console.app import BatchdeckApp


def batchdeck_app(node: MessagePump) -> BatchdeckApp:
    """The app ``node`` runs in, typed as the batchdeck console."""
    return cast("BatchdeckApp", node.app)
