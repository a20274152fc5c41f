"""batchdeck's engine. The public Python API is what this package exports (``__all__``);
every submodule is private and may change. See README "Using batchdeck from Python".

The names are loaded on first use (PEP 562), so ``import engine.safetext`` in a worker
process does not import the whole engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config import AppConfig, BatchConfig, BatchStrategy, GitHubConfig
    from engine.errors import (
        BatchProcessingError,
        GitHubAPIError,
        InputError,
        NetworkError,
        RateLimitError,
    )
    from engine.jobs.ioc_scan.models import IOCMatch
    from engine.kinds import Connection
    from engine.library import BatchMetrics, Engine, Run, RunEvent, ScanOutcome, run_sync, scan_sync
    from engine.models import RunState

_EXPORTS = {
    "AppConfig": "engine.config", "BatchConfig": "engine.config", "BatchStrategy": "engine.config",
    "GitHubConfig": "engine.config",
    "BatchProcessingError": "engine.errors", "GitHubAPIError": "engine.errors", "InputError": "engine.errors",
    "NetworkError": "engine.errors", "RateLimitError": "engine.errors",
    "IOCMatch": "engine.jobs.ioc_scan.models",
    "Connection": "engine.kinds",
    "BatchMetrics": "engine.library", "Engine": "engine.library", "Run": "engine.library",
    "RunEvent": "engine.library", "ScanOutcome": "engine.library", "run_sync": "engine.library",
    "scan_sync": "engine.library",
    "RunState": "engine.models",
}

__all__ = [
    "AppConfig", "BatchConfig", "BatchMetrics", "BatchProcessingError", "BatchStrategy", "Connection", "Engine",
    "GitHubAPIError", "GitHubConfig", "IOCMatch", "InputError", "NetworkError", "RateLimitError", "Run", "RunEvent",
    "RunState", "ScanOutcome", "run_sync", "scan_sync",
]
assert sorted(_EXPORTS) == sorted(__all__), "every public name has one home"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
