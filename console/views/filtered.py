"""The ``/`` filter box that results views share: typing narrows the rows, Enter returns to
the table, the terms are the lower-cased words typed (see ``rowtable.matches_terms``)."""

from __future__ import annotations

from typing import ClassVar

from textual.screen import Screen
from textual.widgets import Input

from console.panes.rowtable import RowTable


class FilteredView(Screen[None]):
    """A results view with a filter ``Input`` whose id is ``FILTER_INPUT``; the subclass says
    how its rows are narrowed (``refilter``) and which ``table`` gets the focus back."""

    FILTER_INPUT: ClassVar[str]
    terms: list[str]

    @property
    def table(self) -> RowTable:
        raise NotImplementedError

    def refilter(self) -> None:
        raise NotImplementedError

    def action_filter(self) -> None:
        self.add_class("-filtering")
        self.query_one(f"#{self.FILTER_INPUT}", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.terms = [t for t in event.value.lower().split() if t]
        self.refilter()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.remove_class("-filtering")
        self.table.focus()
