"""The GitHub API simulator: ``create_app`` for in-process use, ``running_simulator`` over loopback.

See ARCHITECTURE.md §6. The data model lives in ``engine.sim.data`` (built by
``engine.sim.generate`` or ``engine.sim.repos_dir``); the HTTP side in
``engine.sim.app`` and the modules it wires together. The uvicorn side
(``running_simulator``, ``SimServer``, ``main``) is imported on first use, so
in-process users never load uvicorn and ``python -m engine.sim.server`` runs
without a double import.
"""

from typing import Any

from engine.sim.app import SimState, build_org, create_app
from engine.sim.config import BurstConfig, FaultConfig, LatencyDistribution, SimConfig, load_sim_config

_SERVER_NAMES = ("SimServer", "main", "running_simulator")


def __getattr__(name: str) -> Any:
    if name in _SERVER_NAMES:
        from engine.sim import server
        return getattr(server, name)
    raise AttributeError(f"module 'engine.sim' has no attribute {name!r}")


__all__ = [
    "BurstConfig", "FaultConfig", "LatencyDistribution", "SimConfig", "SimServer", "SimState", "build_org",
    "create_app", "load_sim_config", "main", "running_simulator",
]
