"""The job-kind contract: everything a kind brings, declared once in its own package.

A job kind is a :class:`JobKind` object registered under the ``batchdeck.kinds``
entry-point group (``name = "package.module:KIND"``). The engine, the CLI and the
console learn everything about a kind from that object and nothing from its name:

* ``processor``: a factory of the object that plans and processes items, typed by
  :class:`~engine.processor.ItemProcessor` or :class:`~engine.processor.BatchProcessor`.
* ``config``: its own section of the configuration file (``ioc_scan:``...), validated,
  layered (defaults < file < ``BATCHDECK_<SECTION>_<NAME>`` env < overrides) and
  reported by the engine's config machinery, with the same one-line errors.
* ``migrations``: its own tables, created and upgraded by the store (the kind's schema
  version is kept in ``meta`` under ``kind.<name>.schema``).
* ``services``: what a run needs wired in (a GitHub client, a worker pool...), built
  by the engine when the run starts, from the run's breakers, counter sink, recorder
  and the caller's :class:`Connection` (which is never stored).
* ``cli``: its subcommands (``scan``, ``sync``, ``index``...), added to ``batchdeck``.
* ``results``: what ``resume``/``replay`` print when a run of this kind ends, and the
  exit code they give (a scan prints its findings and verdict).
* ``report``: its sections of the run report.
* ``queries``: named read-only queries over its tables, for the console's session layer
  and the Python API (panes never touch the store).

The console view of a kind is registered under the separate ``batchdeck.views`` group
(see :data:`VIEW_ENTRY_POINT_GROUP`) so that loading a kind never imports Textual.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from engine.errors import InputError

if TYPE_CHECKING:
    from engine.breaker import BreakerRegistry
    from engine.config import AppConfig, Setting
    from engine.models import RunInfo
    from engine.processor import Processor
    from engine.store import Store

KIND_ENTRY_POINT_GROUP = "batchdeck.kinds"
VIEW_ENTRY_POINT_GROUP = "batchdeck.views"


@dataclass(frozen=True)
class ConfigSection:
    """A kind's own section of the configuration (``name`` is the top-level key, e.g. ``ioc_scan``).

    Each :class:`~engine.config.Setting` has ``section == name``; values are read back with
    ``AppConfig.kind(name)`` (a mapping of attribute to value, defaults filled in)."""

    name: str
    settings: tuple[Setting, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Migration:
    """One step of a kind's schema: ``version`` counts from 1; ``sql`` is a script run once."""

    version: int
    sql: str


@dataclass(frozen=True)
class Connection:
    """How to reach the outside world for this start of a run. Given by the caller (CLI flags,
    the Python API); never persisted. ``api_url`` None means the run's spec or the config's."""

    token: str | None = None
    api_url: str | None = None
    app_id: int | None = None
    private_key_file: str | None = None
    installation_id: int | None = None
    assume_yes: bool = False             # an unauthenticated scan goes ahead without asking
    interactive: bool = False            # the caller may ask on a terminal
    extra: Mapping[str, Any] = field(default_factory=dict)   # kind-specific (a worker count...)


@dataclass
class ServiceRequest:
    """What a kind's service factory receives when a run starts (new, resumed or replayed)."""

    run: RunInfo
    config: AppConfig
    store: Store
    breakers: BreakerRegistry
    count: Callable[[str, int], None]          # the run's counter sink (api_requests, saved...)
    write: Callable[[str, list[tuple]], None]  # the run's one writer (caches, job rows)
    connection: Connection


class Services(dict[str, Any]):
    """The services of one run, by name (``github`` is the rate-aware client when there is one).

    Closed by the engine when the run's task ends: every value with an ``aclose()`` (or
    ``close()``) is closed once, in reverse order of insertion."""

    async def aclose(self) -> None:
        for value in reversed(list(self.values())):
            closer = getattr(value, "aclose", None)
            if closer is not None:
                await closer()
                continue
            closer = getattr(value, "close", None)
            if closer is not None:
                result = closer()
                if isinstance(result, Awaitable):
                    await result


ServiceFactory = Callable[[ServiceRequest], Awaitable[Services]]


@dataclass(frozen=True)
class CliContext:
    """What a kind's CLI registration receives: the subparsers to add to, the parent parser
    with the global options, and the command plumbing (so kinds do not import the console).

    ``add_connection_flags(parser)`` adds --token/--api-url/--app-id.../--yes;
    ``connection(args)`` reads them back; ``config(args, **overrides)`` builds the AppConfig
    from --config and flags; ``open_engine(args, config)`` is an async context manager;
    ``drive(engine, run_id, args, connection)`` runs a run in the foreground with signals
    handled and headless progress, and returns its final RunState."""

    subparsers: Any
    common: argparse.ArgumentParser
    add_connection_flags: Callable[[argparse.ArgumentParser], None]
    connection: Callable[[argparse.Namespace], Connection]
    config: Callable[..., AppConfig]
    open_engine: Callable[..., Any]
    drive: Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class ResultsRequest:
    """A run of this kind (new, resumed or a replay) has stopped: print what it found."""

    engine: Any
    run_id: int
    args: argparse.Namespace


@dataclass(frozen=True)
class ReportSection:
    """A kind's part of the run report: ``data`` goes into the JSON report under ``key``,
    ``markdown`` (already safe: untrusted text made visible) into the Markdown one."""

    key: str
    title: str
    data: Mapping[str, Any]
    markdown: str


@dataclass(frozen=True)
class JobKind:
    """Everything the engine, the CLI and the console know about one kind of job."""

    name: str
    processor: Callable[..., Processor]
    description: str = ""
    config: ConfigSection | None = None
    migrations: tuple[Migration, ...] = ()
    services: ServiceFactory | None = None
    cli: Callable[[CliContext], None] | None = None
    results: Callable[[ResultsRequest], Awaitable[int]] | None = None
    report: Callable[[Store, int], Awaitable[list[ReportSection]]] | None = None
    queries: Mapping[str, Callable[..., Awaitable[Any]]] = field(default_factory=dict)


def installed_kinds() -> dict[str, Any]:
    """Job kinds installed under the entry-point group, by name (not loaded)."""
    return {ep.name: ep for ep in entry_points(group=KIND_ENTRY_POINT_GROUP)}


def load_kind(name: str) -> JobKind:
    """The :class:`JobKind` registered as ``name`` (an unknown name is one line, exit 2)."""
    kinds = installed_kinds()
    if name not in kinds:
        raise InputError(f"unknown job kind {name!r}; installed kinds: {', '.join(sorted(kinds)) or 'none'}")
    kind = kinds[name].load()
    if not isinstance(kind, JobKind) or kind.name != name:
        raise InputError(f"job kind {name!r}: its entry point does not name a JobKind called {name!r}")
    return kind


def load_kinds() -> list[JobKind]:
    """Every installed kind, by name (for the CLI, the config machinery and the store)."""
    return [load_kind(name) for name in sorted(installed_kinds())]
