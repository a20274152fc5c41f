"""The console's fakes speak the engine's language: every event kind they emit is one the engine
emits (engine/events.py EventKind is the one owner of event kinds), so a pane styled or tested
against a fake event is styled for an event a real run can produce."""

from __future__ import annotations

from console_fakes import ScriptedSource, hostile_events, make_events

from console.panes.breakers import EVENT_LOOK
from engine.events import EventKind


def test_every_event_kind_a_fake_emits_is_an_engine_event_kind() -> None:
    emitted = make_events() + hostile_events() + ScriptedSource().drain_events()
    assert emitted
    strays = [e.kind for e in emitted if not isinstance(e.kind, EventKind)]
    assert strays == [], f"fake events of kinds no engine code emits: {strays}"


def test_the_events_pane_styles_only_engine_event_kinds() -> None:
    assert set(EVENT_LOOK) <= set(EventKind)
    assert all(isinstance(kind, EventKind) for kind in EVENT_LOOK)
