"""A job kind that exists only under tests/: the proof that a kind plugs in without an edit to
``engine/`` or ``console/``. Its test registers it through an entry point (a throwaway
``*.dist-info`` on ``sys.path``).

It brings everything a kind may bring: a processor (items ``echo-<i>`` that each write
``repeat`` rows of ``word`` to its own table), a config section (``echo.word``,
``echo.repeat``; env ``BATCHDECK_ECHO_WORD``, ``BATCHDECK_ECHO_REPEAT``), a migration (the
``echo_said`` table), services (the test's gate, passed in the run's ``Connection.extra``),
a CLI subcommand (``batchdeck echo``), its results on ``resume``/``replay`` and a report section.

Spec: ``{"items": N, "fail": [i, ...], "hold_from": i}``. Items in ``fail`` fail (a client
error: not retried) except in a replay; items from ``hold_from`` on wait for the gate when
the run was given one (and set ``held`` first).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, ClassVar

from engine.config import Setting
from engine.errors import ClientError
from engine.kinds import (
    CliContext,
    ConfigSection,
    Connection,
    JobKind,
    Migration,
    ReportSection,
    ResultsRequest,
    ServiceRequest,
    Services,
)
from engine.models import Item, PlannedItem

NAME = "echo"
SAID_SQL = "INSERT INTO echo_said (run_id, key, word) VALUES (?, ?, ?)"


class EchoJob:
    kind: ClassVar[str] = NAME

    def plan(self, spec: dict[str, Any], ctx: Any):
        for i in range(int(spec["items"])):
            yield PlannedItem(key=f"echo-{i}", payload={"i": i})

    async def process(self, item: Item, ctx: Any) -> Any:
        i = item.payload["i"]
        gate = ctx.services.get("gate")
        if gate is not None and i >= ctx.spec.get("hold_from", float("inf")):
            ctx.services["held"].set()
            await gate.wait()
        if i in ctx.spec.get("fail", ()) and "replay_of" not in ctx.spec:
            raise ClientError(f"{item.key}: told to fail", status_code=422)
        settings = ctx.config.kind(NAME)
        ctx.write(SAID_SQL, [(ctx.run_id, item.key, settings["word"])] * settings["repeat"])
        return None


async def services(req: ServiceRequest) -> Services:
    """The test's gate and its ``held`` signal, when the caller's connection carries them."""
    return Services({k: v for k, v in req.connection.extra.items() if k in ("gate", "held")})


async def said(store: Any, run_id: int) -> int:
    row = await store.fetchone("SELECT count(*) FROM echo_said WHERE run_id=?", (run_id,))
    return row[0]


async def said_rows(store: Any, run_id: int) -> list[dict[str, Any]]:
    """The kind's named query for its console view: what each item said, in order."""
    rows = await store.fetchall("SELECT key, word FROM echo_said WHERE run_id=? ORDER BY rowid", (run_id,))
    return [{"key": key, "word": word} for key, word in rows]


async def results(req: ResultsRequest) -> int:
    n = await said(req.engine.store, req.run_id)
    print(f"echo run {req.run_id}: {n} said")
    return 1 if (await req.engine.store.counts(req.run_id)).failed else 0


async def report(store: Any, run_id: int) -> list[ReportSection]:
    n = await said(store, run_id)
    return [ReportSection(key=NAME, title="Echo", data={"said": n}, markdown=f"{n} lines said")]


def cli(ctx: CliContext) -> None:
    p = ctx.subparsers.add_parser(NAME, parents=[ctx.common], help="say a word per item (a test kind)")
    p.add_argument("--items", type=int, default=3)
    p.add_argument("--fail", type=int, action="append", default=[])

    async def run(args: argparse.Namespace) -> int:
        config = ctx.config(args)
        async with ctx.open_engine(args, config) as engine:
            run_id = await engine.create_run(NAME, {"items": args.items, "fail": args.fail}, config)
            print(f"run {run_id} created: echo", file=sys.stderr)
            return await ctx.drive(engine, run_id, args, Connection())

    p.set_defaults(func=run)


KIND = JobKind(
    name=NAME,
    processor=EchoJob,
    description="a test kind: says a word per item",
    config=ConfigSection(NAME, (
        Setting(NAME, ("word",), "word", "str", env="WORD"),
        Setting(NAME, ("repeat",), "repeat", "int", env="REPEAT", lo=1, hi=5),
    ), defaults={"word": "hello", "repeat": 1}),
    migrations=(Migration(1, "CREATE TABLE IF NOT EXISTS echo_said (run_id INTEGER NOT NULL, key TEXT NOT NULL, "
                             "word TEXT NOT NULL)"),),
    services=services,
    cli=cli,
    results=results,
    report=report,
    queries={"said_rows": said_rows},
)
