"""A job kind for tests and benchmarks: waits a given latency, fails a given fraction.

Clearly not a real job: it exists so the engine can be measured and tested on
its own (no network, no simulator). Spec::

    {"items": 10000, "latency_ms": 0, "fail_rate": 0.05, "permanent_fail_rate": 0.0,
     "error_class": "server", "seed": 1, "journal": "/path/to/file"}

``fail_rate`` items fail on their first try only (with ``error_class``), so
every retryable item recovers on retry; ``permanent_fail_rate`` items fail on
every try (client errors: not retried). ``journal`` appends each processed key
to a file, so a test can tell which items a killed process had really run. Which items fail is decided by a hash
of the item key and the seed, so a resumed run fails the same items.

Gates, so a test holds a run mid-flight instead of racing it: with ``"hold_from": N``
every item from the N-th on waits (as a job blocked on a rate limiter would) until its
gate opens — ``ctx.services["gate"]`` (an :class:`asyncio.Event`) in the test's own
process, or the file ``spec["gate_file"]`` existing, for a run in another process.
``ctx.services["held"]`` (an Event), when given, is set as the first item starts waiting.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any, ClassVar

from engine.errors import ClientError, NetworkError, RequestTimeoutError, ServerError
from engine.kinds import JobKind, ServiceRequest, Services
from engine.models import Item, PlannedItem

ERRORS = {"server": ServerError, "network": NetworkError, "timeout": RequestTimeoutError, "client": ClientError}


def _fraction(key: str, seed: int, salt: str) -> float:
    digest = hashlib.blake2b(f"{seed}:{salt}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


async def _wait_for_gate(ctx: Any, spec: dict[str, Any]) -> None:
    services = getattr(ctx, "services", {}) or {}
    held = services.get("held")
    if held is not None:
        held.set()
    gate = services.get("gate")
    if gate is not None:
        await gate.wait()
        return
    gate_file = Path(spec["gate_file"])
    while not gate_file.exists():      # another process opens it: nothing to await but the file
        await asyncio.sleep(0.02)


class SyntheticJob:
    kind: ClassVar[str] = "synthetic"

    def __init__(self) -> None:
        self.processed: dict[str, int] = {}

    def plan(self, spec: dict[str, Any], ctx: Any):
        n = int(spec.get("items", 100))
        for i in range(n):
            yield PlannedItem(key=f"item-{i:07d}", payload={"i": i}, priority=0, lane=spec.get("lane", "default"))

    async def process(self, item: Item, ctx: Any) -> Any:
        spec = ctx.spec
        latency = float(spec.get("latency_ms", 0)) / 1000
        seed = int(spec.get("seed", 1))
        self.processed[item.key] = self.processed.get(item.key, 0) + 1
        if spec.get("journal"):
            with open(spec["journal"], "a") as journal:
                journal.write(item.key + "\n")
        hold_from = spec.get("hold_from")
        if hold_from is not None and item.payload.get("i", 0) >= int(hold_from):
            await _wait_for_gate(ctx, spec)
        if latency:
            await asyncio.sleep(latency)
        if _fraction(item.key, seed, "permanent") < float(spec.get("permanent_fail_rate", 0.0)):
            raise ClientError(f"{item.key}: rejected (synthetic permanent failure)", status_code=422)
        if item.attempts == 0 and _fraction(item.key, seed, "transient") < float(spec.get("fail_rate", 0.0)):
            cls = ERRORS[spec.get("error_class", "server")]
            raise cls(f"{item.key}: synthetic {spec.get('error_class', 'server')} failure")
        return None


class HttpGetJob:
    """Benchmarks and tests only: each item is one GET of ``spec["path"]`` through the run's
    GitHub client, so the whole engine (feeder, workers, recorder, pacing) is measured
    against the simulator. Spec: ``{"items": N, "path": "/repos/acme/x"}``."""

    kind: ClassVar[str] = "http-get"

    def plan(self, spec: dict[str, Any], ctx: Any):
        for i in range(int(spec.get("items", 100))):
            yield PlannedItem(key=f"get-{i:07d}", payload={}, lane="read")

    async def process(self, item: Item, ctx: Any) -> Any:
        response = await ctx.github.request("GET", ctx.spec["path"], conditional=False)
        return None if response.status == 200 else {"status": response.status}


SYNTHETIC_KIND = JobKind(name="synthetic", processor=SyntheticJob,
                         description="test and benchmark kind: waits, fails a given fraction")
async def _github(req: ServiceRequest) -> Services:
    from engine.github.service import github_services  # when a run starts: loading the kind stays cheap

    return await github_services(req)


HTTP_GET_KIND = JobKind(name="http-get", processor=HttpGetJob, services=_github,
                        description="benchmark kind: one GET per item through the run's GitHub client")
