"""The engine's public API: what the CLI, the console and tests drive.

Harlequin-style: everything a user can do from the TUI is reachable here
without it. ``Engine`` owns one :class:`~engine.store.Store`; a run executes in
this process through :meth:`Engine.start` (a :class:`RunHandle` wraps the
:class:`~engine.runner.Runner` and its live source), or elsewhere — then
:meth:`Engine.attach` follows it through SQLite and steers it through the
``control`` table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.audit import AuditEntry, entries
from engine.config import AppConfig
from engine.errors import InputError
from engine.events import ControlCommand, parse_command
from engine.kinds import Connection, JobKind, Services, load_kind
from engine.metrics import build_report, report_markdown
from engine.models import Counts, RunInfo, RunState
from engine.replay import create_replay
from engine.runner import Runner
from engine.source import DbRunSource, LiveRunSource
from engine.store import Store


@dataclass
class RunHandle:
    runner: Runner
    task: asyncio.Task
    source: LiveRunSource

    @property
    def run_id(self) -> int:
        return self.runner.run_id

    async def wait(self) -> RunState:
        return await self.task

    async def pause(self) -> None:
        await self.runner.pause()

    async def resume(self) -> None:
        await self.runner.resume()

    async def cancel(self) -> None:
        await self.runner.cancel()

    async def stop(self, reason: str = "stopped") -> RunState:
        await self.runner.stop(reason)
        return await self.task


def _with_overrides(config: AppConfig, overrides: dict[str, Any] | None) -> AppConfig:
    """``config`` with the operator's replay settings (flat names: max_concurrent_requests...)."""
    if not overrides:
        return config
    from engine.config import load_config

    return load_config(None, env={}, overrides={**config.to_dict(), **overrides})


async def _run_then_close(runner: Runner, services: Services | None) -> RunState:
    try:
        return await runner.run()
    finally:
        if services is not None:
            await services.aclose()


def _bind(client: Any, runner: Runner) -> None:
    """A client the caller built before the run existed feeds the run's breakers and counters.
    (The kinds' own factories build it bound: engine/github/service.py.)"""
    from engine.github import GitHubClient, OwnerRouter

    if isinstance(client, GitHubClient | OwnerRouter):
        client.bind(breakers=runner.breakers, on_count=runner.ctx.count)


@dataclass(frozen=True)
class RunDetail:
    """One run as ``batchdeck show`` gives it: the run, its item counts, every checkpoint and
    artifact (summaries: an artifact's body is read with the report/replay commands), its audit log."""

    run: RunInfo
    counts: Counts
    checkpoints: list[dict[str, Any]]
    artifacts: list[dict[str, Any]]
    audit: list[AuditEntry]


class Engine:
    def __init__(self, store: Store, config: AppConfig) -> None:
        self.store = store
        self.config = config
        self.handles: dict[int, RunHandle] = {}

    @classmethod
    async def open(cls, db_path: str | Path, config: AppConfig | None = None) -> Engine:
        return cls(await Store.open(db_path), config or AppConfig())

    async def close(self) -> None:
        for handle in list(self.handles.values()):
            if not handle.task.done():
                await handle.stop("engine closed")
        await self.store.close()

    async def __aenter__(self) -> Engine:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- runs -----------------------------------------------------------------------------------
    async def create_run(self, kind: str | JobKind, spec: dict[str, Any], config: AppConfig | None = None,
                         *, parent_id: int | None = None) -> int:
        name = kind.name if isinstance(kind, JobKind) else kind
        load_kind(name)   # an unknown kind fails now, before anything is stored
        cfg = config or self.config
        return await self.store.create_run(name, spec, cfg.to_dict(), parent_id=parent_id)

    async def start(self, run_id: int, *, connection: Connection | None = None, config: AppConfig | None = None,
                    services: Mapping[str, Any] | None = None, github: Any = None) -> RunHandle:
        """Run ``run_id`` in this process (new, paused, interrupted or failed).

        The kind's ``services`` factory builds what the run needs (its GitHub client...) from
        ``connection`` (how to reach the outside world; never stored); they are closed when the
        run's task ends. ``services`` (and ``github``, short for ``services={"github": ...}``)
        are the caller's own instead: used as given, bound to the run, and left open."""
        if self.store.readonly:
            raise InputError(f"{self.store.path}: the database is read-only; run {run_id} cannot be run from it")
        await self.store.detect_interrupted()
        run = await self.store.require_run(run_id)
        if run.state is RunState.RUNNING:
            raise InputError(f"run {run_id} is already running in process {run.owner_pid}")
        if run.state is RunState.COMPLETED:
            raise InputError(f"run {run_id} has completed; replay it to run its failed items again")
        if run.state is RunState.CANCELLED:
            raise InputError(f"run {run_id} was cancelled; replay it to run its items again")
        cfg = config or AppConfig.from_dict(run.config, source=f"run {run_id} config")
        kind = load_kind(run.kind)
        runner = Runner(self.store, run, kind.processor(), cfg)
        owned: Services | None = None
        given = dict(services or {})
        if github is not None:
            given["github"] = github
        if given:
            _bind(given.get("github"), runner)
            runner.use_services(given)
        elif kind.services is not None:
            owned = await kind.services(runner.service_request(connection or Connection()))
            runner.use_services(owned)
        task = asyncio.create_task(_run_then_close(runner, owned), name=f"batchdeck-run-{run_id}")
        handle = RunHandle(runner, task, LiveRunSource(runner))
        self.handles[run_id] = handle
        task.add_done_callback(lambda _t: self.handles.pop(run_id, None))
        return handle

    async def resume(self, run_id: int, **kw: Any) -> RunHandle:
        return await self.start(run_id, **kw)

    async def runs(self, limit: int = 50, before_id: int | None = None) -> list[RunInfo]:
        return await self.store.list_runs(limit, before_id)

    async def counts(self, run_id: int) -> Counts:
        """Run ``run_id``'s items by state, as committed."""
        return await self.store.counts(run_id)

    async def run_detail(self, run_id: int) -> RunDetail:
        """Everything stored about run ``run_id`` but its items (an unknown run: an InputError line).
        A run whose process died is marked interrupted first, so its state is what a resume finds."""
        await self.store.detect_interrupted()
        run = await self.store.require_run(run_id)
        return RunDetail(run, await self.store.counts(run_id), await self.store.list_checkpoints(run_id),
                         await self.store.list_artifacts(run_id), await entries(self.store, run_id))

    async def request(self, run_id: int, command: ControlCommand | str, arg: str | None = None) -> None:
        """Ask the process running ``run_id`` (this one or another) to pause, resume, cancel...
        An unknown command is an InputError line."""
        command = parse_command(command)
        handle = self.handles.get(run_id)
        if handle is not None:
            await handle.runner.apply_command(command, arg)
            return
        run = await self.store.require_run(run_id)
        if run.state.finished:
            raise InputError(f"run {run_id} is {run.state.value}; nothing to {command.value}")
        await self.store.send_control(run_id, command, arg)

    def attach(self, run_id: int, *, readonly: bool = False) -> DbRunSource:
        handle = self.handles.get(run_id)
        source = DbRunSource(self.store, run_id, readonly=readonly)
        if handle is not None:
            source.local = handle.source
        return source

    # -- replay and reports ------------------------------------------------------------------------
    async def replay(self, run_id: int, batch_id: int | None = None, *, config: AppConfig | None = None,
                     overrides: dict[str, Any] | None = None) -> int:
        """A child run holding copies of the failed items (of one batch or all)."""
        parent = await self.store.require_run(run_id)
        items = await self.store.failed_rows(run_id, batch_id)
        if not items:
            where = f"batch {batch_id} of run {run_id}" if batch_id is not None else f"run {run_id}"
            raise InputError(f"{where} has no failed items to replay")
        cfg = _with_overrides(config or AppConfig.from_dict(parent.config, source=f"run {run_id} config"),
                              overrides)
        return await create_replay(self.store, parent, items, {"run": run_id, "batch": batch_id}, cfg,
                                   summary=f"replay of {len(items)} failed items of run {run_id}")

    async def replay_items(self, run_id: int, item_ids: list[int], *, overrides: dict[str, Any] | None = None,
                           note: str = "") -> int:
        """A child run holding copies of the named failed items (what a console filter shows).

        Items of ``item_ids`` that are not failed items of ``run_id`` are ignored; none left is an
        InputError. ``note`` says in the child's spec how they were chosen (e.g. the filter).
        """
        parent = await self.store.require_run(run_id)
        wanted = set(item_ids)
        items = [it for it in await self.store.failed_rows(run_id) if it.id in wanted]
        if not items:
            raise InputError(f"run {run_id}: none of the {len(wanted)} chosen items is a failed item to replay")
        cfg = _with_overrides(AppConfig.from_dict(parent.config, source=f"run {run_id} config"), overrides)
        replay_of = {"run": run_id, "batch": None, "items": len(items), "chosen_by": note}
        return await create_replay(self.store, parent, items, replay_of, cfg,
                                   summary=f"replay of {len(items)} chosen failed items of run {run_id}")

    async def report(self, run_id: int) -> dict[str, Any]:
        return await build_report(self.store, run_id)

    @staticmethod
    def report_markdown(report: dict[str, Any]) -> str:
        return report_markdown(report)

