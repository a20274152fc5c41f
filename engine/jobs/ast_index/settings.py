"""The ``ast_index`` section of the configuration: how an index run parses (and what it leaves out).

Layered like every setting (defaults < file < ``BATCHDECK_AST_INDEX_*`` < the
``index`` command's flags) and checked by the engine's config machinery with
the same one-line errors; what no single key can check (an executor address,
min <= max) is checked here, in the same form::

    ast_index:
      workers: 0                 # worker processes; 0: one per core
      executor: local            # or dask://HOST:PORT
      order: size                # size (largest first), language, mtime (newest first), path
      max_file_size: 1048576     # bytes; larger files are recorded as one error each, not parsed
      exclude:                   # gitignore-style patterns relative to the indexed directory,
        - vendor/                # added to the --exclude flags (BATCHDECK_AST_INDEX_EXCLUDE:
        - "*.min.js"             # comma-separated)
      batch:
        target_seconds: 0.5      # parse time a batch aims at
        min_files: 50
        max_files: 500
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from engine.config import AppConfig, ConfigError, Setting
from engine.jobs.ast_index.discovery import ORDERS, compile_patterns
from engine.kinds import ConfigSection

SECTION = "ast_index"
DEFAULT_MAX_SIZE = 1 << 20
_DASK = re.compile(r"dask://[^\s/:]+:\d{1,5}")


@dataclass(frozen=True)
class IndexSettings:
    workers: int = 0                  # 0: one per core
    executor: str = "local"
    order: str = "size"
    max_size: int = DEFAULT_MAX_SIZE
    exclude: tuple[str, ...] = ()
    batch_seconds: float = 0.5
    batch_min: int = 50
    batch_max: int = 500

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> IndexSettings:
        """From the section's values (attribute -> value), checked together."""
        given = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        given["exclude"] = tuple(given.get("exclude") or ())
        settings = cls(**given)
        compile_patterns(list(settings.exclude), f"{SECTION}.exclude")
        if settings.batch_min > settings.batch_max:
            raise ConfigError(f"{SECTION}.batch.min_files = {settings.batch_min} is greater than "
                              f"{SECTION}.batch.max_files = {settings.batch_max}; need min <= max")
        if settings.executor != "local" and not _DASK.fullmatch(settings.executor):
            raise ConfigError(f"{SECTION}.executor = {settings.executor!r}: use local or dask://HOST:PORT")
        return settings

    @classmethod
    def from_config(cls, config: AppConfig) -> IndexSettings:
        return cls.from_values(config.kind(SECTION))


def _setting(path: str, attr: str, kind: str, lo: float | None = None, hi: float | None = None,
             choices: tuple[str, ...] = ()) -> Setting:
    env = path.replace(".", "_").upper()      # the machinery prefixes BATCHDECK_AST_INDEX_
    return Setting(SECTION, tuple(path.split(".")), attr, kind, env, lo, hi, choices)


CONFIG = ConfigSection(
    name=SECTION,
    settings=(
        _setting("workers", "workers", "int", 0, 1024),
        _setting("executor", "executor", "str"),
        _setting("order", "order", "choice", choices=ORDERS),
        _setting("max_file_size", "max_size", "int", 1, 1 << 40),
        _setting("exclude", "exclude", "list"),
        _setting("batch.target_seconds", "batch_seconds", "float", 0.05, 30),
        _setting("batch.min_files", "batch_min", "int", 1, 100_000),
        _setting("batch.max_files", "batch_max", "int", 1, 100_000),
    ),
    # as loading makes them: a list setting is a list (so a config round-trips through to_dict)
    defaults={f.name: list(f.default) if isinstance(f.default, tuple) else f.default for f in fields(IndexSettings)},
)
