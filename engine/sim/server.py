"""Serving the simulator over loopback: in-process for tests and the demo, or ``batchdeck sim``.

Why it is built this way:

* :func:`running_simulator` runs uvicorn as a task of the caller's event loop
  on a socket it binds itself, so ``port=0`` yields the real port before the
  first request, no thread or subprocess is involved, and leaving the ``async
  with`` block shuts the server down gracefully.
* The embedded server does not install signal handlers (uvicorn's default
  would take SIGINT away from the host application, e.g. the console).
  :func:`main`, which owns its process, handles SIGINT/SIGTERM itself.
* Dropped connections are a feature of the simulator, not an error: their
  tracebacks are filtered out of uvicorn's log.
* The CLI binds loopback unless told otherwise, prints the base URL as its
  first line (flushed, so a parent process can read it), and reports bad
  arguments or configuration as one line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import NoReturn

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from engine.errors import InputError
from engine.sim.app import RECEIVED_AT, build_org, create_app
from engine.sim.config import SimConfig, load_sim_config
from engine.sim.data import SimOrg
from engine.sim.faults import SimulatedConnectionReset


@dataclass(frozen=True)
class SimServer:
    base_url: str
    app: Starlette
    host: str
    port: int


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:   # leave the host's signal handlers alone
        yield


class _StampedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, stamping each request with the time its head was read off
    the socket (``scope[RECEIVED_AT]``). The app runs a request a loop turn or more later, and
    may by then have written a secondary refusal: a request read before that was already on
    the wire, which the limiter must not call a violation (:mod:`engine.sim.limits`)."""

    def data_received(self, data: bytes) -> None:
        received_at = time.time()               # the app's clock when served (create_app's default)
        before = getattr(self, "scope", None)
        super().data_received(data)
        scope = getattr(self, "scope", None)
        if scope is not None and scope is not before:
            scope[RECEIVED_AT] = received_at


class _DropSimulatedResets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedConnectionReset)


_RESET_FILTER = _DropSimulatedResets()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY for that protocol, and without it
    # every response waits ~40 ms on delayed ACKs (measured: /_sim/stats took 44 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def running_simulator(config: SimConfig | None = None, org: SimOrg | None = None,
                            host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[SimServer]:
    """Serve the simulator with uvicorn on ``host:port`` while the block runs."""
    app = create_app(config or SimConfig(), org)
    sock = _bind(host, port)
    real_port = sock.getsockname()[1]
    logging.getLogger("uvicorn.error").addFilter(_RESET_FILTER)   # a no-op when already there
    server = _EmbeddedServer(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False,
                                            http=_StampedH11Protocol,
                                            timeout_graceful_shutdown=2, timeout_keep_alive=30))
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"batchdeck-sim:{real_port}")
    try:
        while not server.started:
            if task.done():
                task.result()   # surfaces a startup failure
                raise RuntimeError("simulator stopped during startup")
            await asyncio.sleep(0.005)
        shown = f"[{host}]" if ":" in host else host
        yield SimServer(base_url=f"http://{shown}:{real_port}", app=app, host=host, port=real_port)
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


# ---------------------------------------------------------------------------
# batchdeck sim

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise InputError(f"batchdeck sim: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="batchdeck sim", description="Serve the GitHub API simulator until interrupted.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--org", help="organisation login (default: acme)")
    p.add_argument("--repos", type=int, help="number of generated repositories")
    p.add_argument("--seed", type=int, help="generation and fault seed")
    p.add_argument("--repos-dir", help="serve the subfolders of DIR as repositories")
    p.add_argument("--config", help="simulator config file (YAML or JSON)")
    p.add_argument("--time-scale", type=float, help="multiply every rate-limit window and wait")
    p.add_argument("--latency-ms", type=float, help="fixed latency added to every API response")
    return p


def config_from_args(args: argparse.Namespace) -> SimConfig:
    config = load_sim_config(args.config) if args.config else SimConfig()
    config = config.with_overrides(org=args.org, repos=args.repos, seed=args.seed, repos_dir=args.repos_dir,
                                   time_scale=args.time_scale)
    if args.latency_ms is not None:
        config.faults = config.faults.merged({"latency_ms": args.latency_ms}, "--latency-ms")
    return config


async def _serve_until_signalled(config: SimConfig, org: SimOrg, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running_simulator(config, org, host, port) as server:
        print(server.base_url, flush=True)
        print(f"org {org.login}: {len(org.repos)} repositories; stats at {server.base_url}/_sim/stats",
              file=sys.stderr, flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """``batchdeck sim``: print the base URL first, serve until SIGINT/SIGTERM."""
    try:
        args = _parser().parse_args(argv)
        if not 0 <= args.port <= 65535:
            raise InputError(f"batchdeck sim: --port {args.port} is not a port number")
        config = config_from_args(args)
        org = build_org(config)
        asyncio.run(_serve_until_signalled(config, org, args.host, args.port))
    except InputError as err:
        print(str(err), file=sys.stderr)
        return 2
    except KeyboardInterrupt:       # interrupted before the signal handlers were installed
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
