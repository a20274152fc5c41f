"""Settings of the GitHub API simulator: its data, its limits and its faults.

Why it is built this way:

* Defaults are GitHub's own documented numbers (5,000 core requests and 5,000
  GraphQL points per hour, 30 searches per minute, 60 requests per hour without
  a token, at most 100 concurrent requests, 900 REST / 2,000 GraphQL points per
  minute, 80 content-creating requests per minute and 500 per hour), so a
  client tuned against the simulator is tuned for github.com.
* ``time_scale`` multiplies every window and every wait the simulator imposes
  (the hour of the primary buckets, the minute of the secondary limits, the
  secondary-limit penalty and so ``retry-after``): ``time_scale=0.01`` turns
  an hour into 36 s, so a test can live through several resets.
* Faults are a separate dataclass because they change at runtime
  (``POST /_sim/faults`` merges into them) and must be validated the same way
  whether they come from a file, a flag or that endpoint; every bad value is an
  ``InputError`` that names the source and the key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from engine.errors import InputError
from engine.sim.data import TRUNCATE_TREE_ENTRIES

LATENCY_DISTRIBUTIONS = ("lognormal", "normal", "uniform")
RETRY_AFTER_MODES = ("always", "never", "sometimes")
LIMIT_STATUSES = ("403", "429", "mixed")


@dataclass(slots=True)
class LatencyDistribution:
    dist: str = "lognormal"
    mean_ms: float = 50.0
    sd_ms: float = 10.0


@dataclass(slots=True)
class BurstConfig:
    """Every ``every_s`` seconds, for ``duration_s`` seconds, 5xx at ``error_rate``."""

    every_s: float = 60.0
    duration_s: float = 5.0
    error_rate: float = 0.5


@dataclass(slots=True)
class FaultConfig:
    latency_ms: float = 0.0                       # fixed, used when no distribution is set
    latency: LatencyDistribution | None = None
    error_rate: float = 0.0                       # share of requests answered 500/502/503
    timeout_rate: float = 0.0                     # share that hang for hang_s
    hang_s: float = 10.0
    timeout_status: int | None = 504              # None: hang, then drop without an answer
    reset_rate: float = 0.0                       # share whose connection is dropped
    bursts: BurstConfig | None = None
    truncate_tree_entries: int = TRUNCATE_TREE_ENTRIES
    # the n-th request admitted (1-based, counted since start or /_sim/reset) trips a secondary
    # block whatever the points: a trip that does not depend on how fast the client is
    secondary_block_at: list[int] = field(default_factory=list)

    def merged(self, patch: Mapping[str, Any], source: str = "faults") -> FaultConfig:
        """A copy with ``patch`` applied; nested mappings merge, ``null`` clears."""
        return _fault_config(_deep_merge(self.to_dict(), patch, source), source)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class SimConfig:
    org: str = "acme"
    repos: int = 50
    seed: int = 1
    repos_dir: str | None = None
    time_scale: float = 1.0
    core_limit: int = 5000
    unauthenticated_limit: int = 60
    search_limit: int = 30                        # per minute, like GitHub
    graphql_limit: int = 5000                     # points per hour
    secondary_max_concurrent: int = 100
    secondary_points_per_minute: int = 900        # REST: GET/HEAD/OPTIONS 1, writes 5
    secondary_graphql_points_per_minute: int = 2000
    content_create_per_minute: int = 80
    content_create_per_hour: int = 500
    secondary_penalty_s: float = 60.0             # how long a secondary limit blocks the token
    secondary_retry_after: str = "sometimes"
    secondary_status: str = "mixed"               # 403, 429, or either (seeded)
    primary_status: int = 403
    invalid_tokens: list[str] = field(default_factory=lambda: ["bad-token"])
    graphql_blob_text_limit: int = 512_000        # Blob.text is cut here, isTruncated set
    graphql_response_limit_bytes: int = 10_000_000
    faults: FaultConfig = field(default_factory=FaultConfig)
    app: dict[str, Any] = field(default_factory=dict)   # the GitHub App (engine.sim.apps.SimAppConfig)

    def window(self, seconds: float) -> float:
        """``seconds`` of GitHub time in simulator time."""
        return seconds * self.time_scale

    def with_overrides(self, **overrides: Any) -> SimConfig:
        """A validated copy; ``None`` values are ignored (unset CLI flags)."""
        data = {k: v for k, v in overrides.items() if v is not None}
        merged = {**self.to_dict(), **data}
        return _sim_config(merged, "command line")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------
# validation: one rule per key, shared by files, flags and /_sim/faults

_INT = "an integer"
_NUM = "a number"


def _check_number(value: Any, key: str, source: str, *, lo: float, hi: float = math.inf,
                  integer: bool = False, lo_open: bool = False) -> float | int:
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok_type or (isinstance(value, float) and not math.isfinite(value)):
        raise InputError(f"{source}: key '{key}': expected {_INT if integer else _NUM}, got {value!r}")
    if value < lo or value > hi or (lo_open and value == lo):
        span = f"> {lo}" if lo_open else f">= {lo}" if hi == math.inf else f"in {lo}..{hi}"
        raise InputError(f"{source}: key '{key}': {value!r} is out of range (must be {span})")
    return value


def _check_choice(value: Any, key: str, source: str, choices: tuple[str, ...]) -> str:
    if str(value) not in choices:
        raise InputError(f"{source}: key '{key}': {value!r} is not one of {', '.join(choices)}")
    return str(value)


def _check_mapping(value: Any, key: str, source: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(f"{source}: key '{key}': expected a mapping, got {value!r}")
    return value


def _reject_unknown(data: Mapping[str, Any], cls: type, prefix: str, source: str) -> None:
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            raise InputError(f"{source}: unknown key '{prefix}{key}' (known: {', '.join(sorted(known))})")


def _deep_merge(base: dict[str, Any], patch: Mapping[str, Any], source: str) -> dict[str, Any]:
    out = dict(base)
    for key, value in _check_mapping(patch, "faults", source).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _fault_config(data: Mapping[str, Any], source: str) -> FaultConfig:
    _reject_unknown(data, FaultConfig, "faults.", source)
    cfg = FaultConfig()
    p = "faults."
    for name in ("latency_ms", "hang_s"):
        if name in data:
            setattr(cfg, name, float(_check_number(data[name], p + name, source, lo=0)))
    for name in ("error_rate", "timeout_rate", "reset_rate"):
        if name in data:
            setattr(cfg, name, float(_check_number(data[name], p + name, source, lo=0, hi=1)))
    if cfg.error_rate + cfg.timeout_rate + cfg.reset_rate > 1:
        raise InputError(f"{source}: keys 'faults.error_rate' + 'timeout_rate' + 'reset_rate' exceed 1")
    if data.get("timeout_status") is not None:
        cfg.timeout_status = int(_check_number(data["timeout_status"], p + "timeout_status", source,
                                               lo=500, hi=599, integer=True))
    elif "timeout_status" in data:
        cfg.timeout_status = None
    if data.get("secondary_block_at") is not None:
        at = data["secondary_block_at"]
        if not isinstance(at, list):
            raise InputError(f"{source}: key '{p}secondary_block_at' must be a list of request numbers")
        cfg.secondary_block_at = [int(_check_number(n, p + "secondary_block_at", source, lo=1, integer=True))
                                  for n in at]
    if "truncate_tree_entries" in data:
        cfg.truncate_tree_entries = int(_check_number(data["truncate_tree_entries"],
                                                      p + "truncate_tree_entries", source, lo=1, integer=True))
    if data.get("latency") is not None:
        lat = _check_mapping(data["latency"], p + "latency", source)
        _reject_unknown(lat, LatencyDistribution, p + "latency.", source)
        cfg.latency = LatencyDistribution(
            dist=_check_choice(lat.get("dist", "lognormal"), p + "latency.dist", source, LATENCY_DISTRIBUTIONS),
            mean_ms=float(_check_number(lat.get("mean_ms", 50.0), p + "latency.mean_ms", source, lo=0)),
            sd_ms=float(_check_number(lat.get("sd_ms", 0.0), p + "latency.sd_ms", source, lo=0)),
        )
    if data.get("bursts") is not None:
        b = _check_mapping(data["bursts"], p + "bursts", source)
        _reject_unknown(b, BurstConfig, p + "bursts.", source)
        cfg.bursts = BurstConfig(
            every_s=float(_check_number(b.get("every_s", 60.0), p + "bursts.every_s", source, lo=0, lo_open=True)),
            duration_s=float(_check_number(b.get("duration_s", 5.0), p + "bursts.duration_s", source, lo=0)),
            error_rate=float(_check_number(b.get("error_rate", 0.5), p + "bursts.error_rate", source, lo=0, hi=1)),
        )
    return cfg


_POSITIVE_INTS = (
    "core_limit", "unauthenticated_limit", "search_limit", "graphql_limit", "secondary_max_concurrent",
    "secondary_points_per_minute", "secondary_graphql_points_per_minute", "content_create_per_minute",
    "content_create_per_hour", "graphql_blob_text_limit", "graphql_response_limit_bytes",
)


def _sim_config(data: Mapping[str, Any], source: str) -> SimConfig:
    _reject_unknown(data, SimConfig, "", source)
    cfg = SimConfig()
    if "org" in data:
        if not isinstance(data["org"], str) or not data["org"].strip():
            raise InputError(f"{source}: key 'org': expected a non-empty name, got {data['org']!r}")
        cfg.org = data["org"]
    if "repos" in data:
        cfg.repos = int(_check_number(data["repos"], "repos", source, lo=0, integer=True))
    if "seed" in data:
        cfg.seed = int(_check_number(data["seed"], "seed", source, lo=-(2**63), integer=True))
    if data.get("repos_dir") is not None:
        if not Path(str(data["repos_dir"])).is_dir():
            raise InputError(f"{source}: key 'repos_dir': {data['repos_dir']!r} is not a directory")
        cfg.repos_dir = str(data["repos_dir"])
    if "time_scale" in data:
        cfg.time_scale = float(_check_number(data["time_scale"], "time_scale", source, lo=0, lo_open=True))
    for name in _POSITIVE_INTS:
        if name in data:
            setattr(cfg, name, int(_check_number(data[name], name, source, lo=1, integer=True)))
    if "secondary_penalty_s" in data:
        cfg.secondary_penalty_s = float(_check_number(data["secondary_penalty_s"], "secondary_penalty_s",
                                                      source, lo=0))
    if "secondary_retry_after" in data:
        cfg.secondary_retry_after = _check_choice(data["secondary_retry_after"], "secondary_retry_after",
                                                  source, RETRY_AFTER_MODES)
    if "secondary_status" in data:
        cfg.secondary_status = _check_choice(data["secondary_status"], "secondary_status", source,
                                             LIMIT_STATUSES)
    if "primary_status" in data:
        cfg.primary_status = int(_check_choice(data["primary_status"], "primary_status", source, ("403", "429")))
    if "invalid_tokens" in data:
        tokens = data["invalid_tokens"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise InputError(f"{source}: key 'invalid_tokens': expected a list of strings")
        cfg.invalid_tokens = list(tokens)
    if data.get("app") is not None:
        from engine.sim.apps import app_config_from_dict

        app_config_from_dict(data["app"], source)   # validated here, built by the app
        cfg.app = dict(data["app"])
    if data.get("faults") is not None:
        faults = data["faults"]
        if isinstance(faults, FaultConfig):
            faults = faults.to_dict()
        cfg.faults = _fault_config(_check_mapping(faults, "faults", source), source)
    return cfg


def sim_config_from_dict(data: Mapping[str, Any], source: str = "config") -> SimConfig:
    """Validate a plain mapping (parsed file, JSON body) into a :class:`SimConfig`."""
    return _sim_config(_check_mapping(data, "(top level)", source), source)


def load_sim_config(path: str | Path) -> SimConfig:
    """Read a YAML or JSON file; a ``sim:`` section is used when the file has one."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{p}: cannot read simulator config ({exc.strerror or exc})") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        mark, lineno = getattr(exc, "problem_mark", None), getattr(exc, "lineno", None)  # YAML, JSON
        line = f" line {mark.line + 1}" if mark is not None else f" line {lineno}" if lineno else ""
        raise InputError(f"{p}:{line} is not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}") from None
    if data is None:
        return SimConfig()
    if isinstance(data, Mapping) and set(data) == {"sim"}:
        data = data["sim"] or {}
    return sim_config_from_dict(data, str(p))


__all__ = [
    "BurstConfig", "FaultConfig", "LatencyDistribution", "SimConfig", "load_sim_config",
    "sim_config_from_dict",
]
