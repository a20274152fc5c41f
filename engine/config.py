"""Configuration: what a run may spend, and where each setting came from.

Why it is built this way:

* Field names, defaults and ranges are those of the configuration guide (seed
  001), and its ``GITHUB_IOC_SCANNER_*`` environment names are still read as
  aliases, so a setup written for the seed's scanner keeps working.
* One table, ``SETTINGS``, describes every setting once: its attribute, its
  place in the nested file layout, its environment name, its type and range.
  Loading, validation, ``to_dict`` and the error messages all read that table,
  so they cannot drift apart.
* Layers are applied in order defaults < file < environment < overrides (CLI
  flags), and every value is checked as its layer is read, so an error can name
  the file or variable it came from, the key path, the value and what is
  allowed, on one line (the CLI prints it and exits 2).
* A job kind brings its own section (``ioc_scan:``, ``issue_sync:``...) as a
  :class:`~engine.kinds.ConfigSection` of Settings: the installed kinds' sections
  join the same table at load time, with the same layering, checks and errors;
  their variables are ``BATCHDECK_<SECTION>_<NAME>``; ``AppConfig.kind(name)``
  reads a section back. A section no installed kind declares is an unknown key.
* Tokens are never configuration: they come from the environment or a keyring
  at the point of use, so a config dict stored with a run can never leak one.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from engine.errors import InputError

ENV_PREFIX = "BATCHDECK_"
ENV_ALIAS_PREFIX = "GITHUB_IOC_SCANNER_"   # the seed's names, batch settings only
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


class ConfigError(InputError):
    """A bad setting. ``str()`` is one line: source, key path, value, what is allowed."""


class BatchStrategy(StrEnum):
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"
    ADAPTIVE = "adaptive"
    AGGRESSIVE = "aggressive"
    CONSERVATIVE = "conservative"


@dataclass(frozen=True, slots=True)
class Setting:
    """One configurable value: where it lives and what it may be."""

    section: str                 # batch | github | console, or a job kind's section name
    path: tuple[str, ...]        # key path inside the section, in the file layout
    attr: str                    # attribute of the section's dataclass
    kind: str                    # int | float | bool | str | url | choice | keymap | list (of strings)
    env: str | None = None       # variable name after BATCHDECK_
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return ".".join((self.section, *self.path))

    def allowed(self) -> str:
        if self.lo is not None:
            noun = "an integer" if self.kind == "int" else "a number"
            return f"{noun} in {self.lo}..{self.hi}"
        return {
            "bool": "true/false/yes/no/1/0",
            "choice": "one of " + ", ".join(self.choices),
            "url": "an http:// or https:// URL",
            "str": "a non-empty string",
            "keymap": "a mapping of binding id to key (strings)",
            "list": "a list of non-empty strings (in a variable or flag: comma-separated)",
        }[self.kind]


def _s(section: str, path: str, attr: str, kind: str, env: str | None = None,
       lo: float | None = None, hi: float | None = None, choices: tuple[str, ...] = ()) -> Setting:
    return Setting(section, tuple(path.split(".")), attr, kind, env, lo, hi, choices)


SETTINGS: tuple[Setting, ...] = (
    _s("batch", "concurrency.max_concurrent_requests", "max_concurrent_requests", "int", "MAX_CONCURRENT_REQUESTS", 1, 50),
    _s("batch", "concurrency.max_concurrent_repos", "max_concurrent_repos", "int", "MAX_CONCURRENT_REPOS", 1, 10),
    _s("batch", "batch_sizes.default", "default_batch_size", "int", "DEFAULT_BATCH_SIZE", 1, 100),
    _s("batch", "batch_sizes.max", "max_batch_size", "int", "MAX_BATCH_SIZE", 1, 200),
    _s("batch", "batch_sizes.min", "min_batch_size", "int", "MIN_BATCH_SIZE", 1, 10),
    _s("batch", "performance.rate_limit_buffer", "rate_limit_buffer", "float", "RATE_LIMIT_BUFFER", 0.1, 1.0),
    _s("batch", "performance.retry_attempts", "retry_attempts", "int", "RETRY_ATTEMPTS", 0, 10),
    _s("batch", "performance.retry_delay_base", "retry_delay_base", "float", "RETRY_DELAY_BASE", 0.1, 10.0),
    _s("batch", "memory.max_usage_mb", "max_memory_usage_mb", "int", "MAX_MEMORY_MB", 100, 5000),
    _s("batch", "memory.stream_threshold_bytes", "stream_large_files_threshold", "int",
       "STREAM_THRESHOLD_BYTES", 10240, 10485760),
    _s("batch", "strategy.default", "default_strategy", "choice", "BATCH_STRATEGY",
       choices=tuple(s.value for s in BatchStrategy)),
    _s("batch", "strategy.enable_cross_repo_batching", "enable_cross_repo_batching", "bool",
       "ENABLE_CROSS_REPO_BATCHING"),
    _s("batch", "strategy.enable_file_prioritization", "enable_file_prioritization", "bool",
       "ENABLE_FILE_PRIORITIZATION"),
    _s("batch", "monitoring.enable_performance_monitoring", "enable_performance_monitoring", "bool",
       "ENABLE_PERFORMANCE_MONITORING"),
    _s("batch", "monitoring.log_batch_metrics", "log_batch_metrics", "bool", "LOG_BATCH_METRICS"),
    _s("batch", "checkpoints.interval", "checkpoint_interval", "int", "CHECKPOINT_INTERVAL", 1, 100000),
    _s("batch", "circuit_breaker.failure_threshold", "breaker_failure_threshold", "int",
       "BREAKER_FAILURE_THRESHOLD", 1, 100),
    _s("batch", "circuit_breaker.recovery_timeout", "breaker_recovery_timeout", "float",
       "BREAKER_RECOVERY_TIMEOUT", 0.05, 600),
    _s("batch", "circuit_breaker.half_open_probes", "breaker_half_open_probes", "int",
       "BREAKER_HALF_OPEN_PROBES", 1, 10),
    _s("github", "api_url", "api_url", "url", "API_URL"),
    _s("github", "request_timeout", "request_timeout", "float", "REQUEST_TIMEOUT", 1, 300),
    _s("github", "transport", "transport", "choice", "TRANSPORT", choices=("aiohttp", "httpx")),
    _s("github", "time_scale", "time_scale", "float", "TIME_SCALE", 0.0001, 1.0),
    _s("github", "pacing", "pacing", "choice", "PACING", choices=("finish", "spread")),
    _s("console", "theme", "theme", "str", "THEME"),
    _s("console", "refresh_hz", "refresh_hz", "float", "REFRESH_HZ", 0.5, 30),
    _s("console", "keymap", "keymap", "keymap"),   # not from env: a mapping has no one-line form
)
SETTINGS_BY_ATTR = {s.attr: s for s in SETTINGS}
SECTIONS = ("batch", "github", "console")


def _build_tree() -> dict[str, Any]:
    """The file layout as nested dicts whose leaves are Settings."""
    tree: dict[str, Any] = {}
    for s in SETTINGS:
        node = tree.setdefault(s.section, {})
        for part in s.path[:-1]:
            node = node.setdefault(part, {})
        node[s.path[-1]] = s
    return tree


_TREE = _build_tree()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(source: str, s: Setting, value: Any, problem: str) -> ConfigError:
    return ConfigError(f"{source}: {s.key} = {_show(value)}: {problem}; allowed: {s.allowed()}")


def _coerce(s: Setting, value: Any, source: str, *, parse_text: bool = False) -> Any:
    """Check one value. Numbers and booleans given as text are parsed only when
    ``parse_text`` (environment, CLI): in a file, ``"15"`` is the wrong type."""
    raw = value
    text = value.strip() if isinstance(value, str) else None
    if not parse_text and s.kind in ("int", "float", "bool"):
        text = None
    if s.kind == "int":
        if text is not None:
            try:
                value = int(text)
            except ValueError:
                raise _bad(source, s, raw, "not an integer") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(source, s, raw, "not an integer")
    elif s.kind == "float":
        if text is not None:
            try:
                value = float(text)
            except ValueError:
                raise _bad(source, s, raw, "not a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise _bad(source, s, raw, "not a number")
        value = float(value)
    elif s.kind == "bool":
        if text is not None and text.lower() in _TRUE | _FALSE:
            value = text.lower() in _TRUE
        if not isinstance(value, bool):
            raise _bad(source, s, raw, "not a boolean")
    elif s.kind == "choice":
        if text is None or text.lower() not in s.choices:
            raise _bad(source, s, raw, "not a known choice")
        value = BatchStrategy(text.lower()) if s.key == "batch.strategy.default" else text.lower()
    elif s.kind in ("str", "url"):
        if not text:
            raise _bad(source, s, raw, "not a non-empty string")
        if s.kind == "url" and not text.startswith(("http://", "https://")):
            raise _bad(source, s, raw, "not a URL")
        value = text
    elif s.kind == "keymap":
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise _bad(source, s, raw, "not a mapping of strings")
        value = dict(value)
    elif s.kind == "list":
        if text is not None and parse_text:
            value = [part.strip() for part in text.split(",")]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v.strip() for v in value):
            raise _bad(source, s, raw, "not a list of non-empty strings")
        value = list(value)
    if s.lo is not None and not (s.lo <= value <= s.hi):
        raise _bad(source, s, raw, "out of range")
    return value


# -- job kinds' sections --------------------------------------------------------

@dataclass(frozen=True)
class _KindSections:
    """The config sections of the installed job kinds, merged into the core layout."""

    sections: dict[str, Any]                      # section name -> ConfigSection
    by_kind: dict[str, str]                       # kind name -> its section name
    tree: dict[str, Any]                          # the whole file layout, core and kinds
    settings: tuple[Setting, ...]                 # the kinds' settings


_kind_cache: dict[tuple, _KindSections] = {}


def _kind_sections() -> _KindSections:
    """The installed kinds' sections (loaded through their entry points; cached per installed set)."""
    from engine.kinds import installed_kinds, load_kind

    eps = installed_kinds()
    key = tuple(sorted((name, ep.value) for name, ep in eps.items()))
    cached = _kind_cache.get(key)
    if cached is not None:
        return cached
    sections: dict[str, Any] = {}
    by_kind: dict[str, str] = {}
    for name in sorted(eps):
        section = load_kind(name).config
        if section is None:
            continue
        if section.name in SECTIONS or section.name in sections:
            raise ConfigError(f"job kind {name!r}: its config section {section.name!r} is taken")
        for setting in section.settings:
            if setting.section != section.name:
                raise ConfigError(f"job kind {name!r}: setting {setting.key} is not in its section {section.name!r}")
        sections[section.name] = section
        by_kind[name] = section.name
    tree = dict(_TREE)
    settings = tuple(s for section in sections.values() for s in section.settings)
    for s in settings:
        node = tree.setdefault(s.section, {})
        for part in s.path[:-1]:
            node = node.setdefault(part, {})
        node[s.path[-1]] = s
    found = _KindSections(sections, by_kind, tree, settings)
    _kind_cache[key] = found
    return found


def _slot(s: Setting) -> str:
    """Where a value is kept while loading: core settings by attribute, a kind's by section.attr."""
    return s.attr if s.section in SECTIONS else f"{s.section}.{s.attr}"


def _validate_section(obj: Any, section: str, source: str) -> None:
    for f in fields(obj):
        s = SETTINGS_BY_ATTR[f.name]
        setattr(obj, f.name, _coerce(s, getattr(obj, f.name), source))


@dataclass
class BatchConfig:
    """The guide's batch settings, plus checkpoint and circuit-breaker ones."""

    max_concurrent_requests: int = 10
    max_concurrent_repos: int = 3
    default_batch_size: int = 10
    max_batch_size: int = 50
    min_batch_size: int = 1
    rate_limit_buffer: float = 0.8
    retry_attempts: int = 3
    retry_delay_base: float = 1.0
    max_memory_usage_mb: int = 500
    stream_large_files_threshold: int = 1048576
    default_strategy: BatchStrategy = BatchStrategy.ADAPTIVE
    enable_cross_repo_batching: bool = True
    enable_file_prioritization: bool = True
    enable_performance_monitoring: bool = True
    log_batch_metrics: bool = False
    checkpoint_interval: int = 100
    breaker_failure_threshold: int = 5
    breaker_recovery_timeout: float = 30.0
    breaker_half_open_probes: int = 1

    def __post_init__(self) -> None:
        _validate_section(self, "batch", "BatchConfig")
        _check_batch_sizes({a: _Val(getattr(self, a), "BatchConfig") for a in _SIZE_ATTRS})


@dataclass
class GitHubConfig:
    api_url: str = "https://api.github.com"
    request_timeout: float = 30.0
    transport: str = "aiohttp"
    time_scale: float = 1.0   # multiplies GitHub's fixed waits (60 s secondary-limit default...)
    pacing: str = "finish"    # finish: spend the budget at once, then wait; spread: over the window

    def __post_init__(self) -> None:
        _validate_section(self, "github", "GitHubConfig")


@dataclass
class ConsoleConfig:
    theme: str = "dark"
    refresh_hz: float = 4.0
    keymap: dict[str, str] = field(default_factory=dict)   # binding id -> key

    def __post_init__(self) -> None:
        _validate_section(self, "console", "ConsoleConfig")


_SECTION_CLASSES = {"batch": BatchConfig, "github": GitHubConfig, "console": ConsoleConfig}


@dataclass
class AppConfig:
    batch: BatchConfig = field(default_factory=BatchConfig)
    github: GitHubConfig = field(default_factory=GitHubConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    #: the installed job kinds' sections: section name -> attribute -> value (defaults filled in)
    kinds: dict[str, dict[str, Any]] = field(default_factory=lambda: _default_kinds())

    def kind(self, name: str) -> Mapping[str, Any]:
        """A job kind's settings, by kind name (``ioc-scan``) or section name (``ioc_scan``)."""
        found = _kind_sections()
        section = found.by_kind.get(name, name)
        if section not in found.sections:
            raise KeyError(f"no installed job kind has a config section {name!r}")
        values = dict(_kind_defaults(found.sections[section]))
        values.update(self.kinds.get(section, {}))
        return values

    def to_dict(self) -> dict[str, Any]:
        """The nested file layout (loadable again by ``from_dict`` or as a file)."""
        out: dict[str, Any] = {}
        kinds = _kind_sections()
        for s in (*SETTINGS, *kinds.settings):
            if s.section in SECTIONS:
                value = getattr(getattr(self, s.section), s.attr)
            else:
                value = self.kind(s.section).get(s.attr)
                if value is None:
                    continue
            node = out.setdefault(s.section, {})
            for part in s.path[:-1]:
                node = node.setdefault(part, {})
            node[s.path[-1]] = dict(value) if isinstance(value, dict) else list(value) if isinstance(
                value, list | tuple) else (value.value if isinstance(value, StrEnum) else value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> AppConfig:
        """Build from the nested layout (missing keys take their defaults)."""
        values: dict[str, _Val] = {}
        _walk(data, _kind_sections().tree, "", source, values)
        return _build(values)


# -- loading ------------------------------------------------------------------

@dataclass(slots=True)
class _Val:
    value: Any
    source: str


_SIZE_ATTRS = ("min_batch_size", "default_batch_size", "max_batch_size")


def _check_batch_sizes(vals: Mapping[str, _Val]) -> None:
    pairs = (("min_batch_size", "default_batch_size"), ("default_batch_size", "max_batch_size"),
             ("min_batch_size", "max_batch_size"))
    for lo_attr, hi_attr in pairs:
        lo, hi = vals[lo_attr], vals[hi_attr]
        if lo.value > hi.value:
            lo_s, hi_s = SETTINGS_BY_ATTR[lo_attr], SETTINGS_BY_ATTR[hi_attr]
            where = " / ".join(dict.fromkeys(v.source for v in (lo, hi) if v.source != "default"))
            raise ConfigError(
                f"{where}: {lo_s.key} = {lo.value} ({lo.source}) is greater than"
                f" {hi_s.key} = {hi.value} ({hi.source}); need min <= default <= max")


def _unknown(source: str, path: str, key: Any, known: list[str]) -> ConfigError:
    parent = path.rpartition(".")[0]
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean {parent + '.' if parent else ''}{close[0]}?"
    else:
        hint = f"known keys here: {', '.join(sorted(known))}"
    return ConfigError(f"{source}: unknown key {path}; {hint}")


def _walk(data: Any, tree: Mapping[str, Any], prefix: str, source: str, out: dict[str, _Val]) -> None:
    if data is None:          # an empty YAML section ("batch:" and nothing under it)
        return
    if not isinstance(data, Mapping):
        where = prefix or "top level"
        raise ConfigError(f"{source}: {where} = {_show(data)}: expected a mapping of keys")
    for key, value in data.items():
        if not prefix and isinstance(key, str) and key.startswith("_"):
            continue          # top-level "_comment" keys: JSON has no comments
        path = f"{prefix}.{key}" if prefix else str(key)
        node = tree.get(key) if isinstance(key, str) else None
        if node is None:
            raise _unknown(source, path, key, list(tree))
        if isinstance(node, Setting):
            out[_slot(node)] = _Val(_coerce(node, value, source), source)
        else:
            _walk(value, node, path, source, out)


def _build(values: Mapping[str, _Val]) -> AppConfig:
    defaults = {a: _Val(getattr(BatchConfig, a), "default") for a in _SIZE_ATTRS}
    _check_batch_sizes({**defaults, **{a: v for a, v in values.items() if a in _SIZE_ATTRS}})
    core = {a: v for a, v in values.items() if a in SETTINGS_BY_ATTR}
    sections = {
        name: cls(**{a: v.value for a, v in core.items() if SETTINGS_BY_ATTR[a].section == name})
        for name, cls in _SECTION_CLASSES.items()
    }
    kinds = _default_kinds()
    for slot, v in values.items():
        if slot not in core:
            section, _, attr = slot.partition(".")
            kinds.setdefault(section, {})[attr] = v.value
    return AppConfig(**sections, kinds=kinds)


def _default_kinds() -> dict[str, dict[str, Any]]:
    return {name: _kind_defaults(section) for name, section in _kind_sections().sections.items()}


def _kind_defaults(section: Any) -> dict[str, Any]:
    return {s.attr: section.defaults.get(s.attr) for s in section.settings}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or JSON file (by suffix) into a dict; errors name file and line."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"{p}: unsupported config file type {suffix or '(none)'!r}, allowed .yaml, .yml, .json")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config file ({type(exc).__name__}: {exc})") from None
    if suffix == ".json":
        try:
            data = json.loads(text) if text.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{p}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}") from None
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    return data if data is not None else {}


def env_name(s: Setting) -> str | None:
    """The variable that sets ``s``: ``BATCHDECK_<ENV>``, for a kind ``BATCHDECK_<SECTION>_<ENV>``."""
    if s.env is None:
        return None
    return ENV_PREFIX + (s.env if s.section in SECTIONS else f"{s.section.upper()}_{s.env}")


def _env_layer(env: Mapping[str, str]) -> dict[str, _Val]:
    out: dict[str, _Val] = {}
    for s in (*SETTINGS, *_kind_sections().settings):
        primary = env_name(s)
        if primary is None:
            continue
        names = [primary] + ([ENV_ALIAS_PREFIX + s.env] if s.section == "batch" and s.env else [])
        for name in names:   # BATCHDECK_* first: it wins over the seed's alias
            raw = env.get(name)
            if raw is not None and raw.strip():   # an empty variable counts as unset
                out[_slot(s)] = _Val(_coerce(s, raw, name, parse_text=True), name)
                break
    return out


def _override_layer(overrides: Mapping[str, Any], source: str) -> dict[str, _Val]:
    out: dict[str, _Val] = {}
    tree = _kind_sections().tree
    for key, value in overrides.items():
        if value is None:         # a CLI flag that was not given
            continue
        if key in tree:
            _walk(value, tree[key], key, source, out)
        elif key in SETTINGS_BY_ATTR:
            s = SETTINGS_BY_ATTR[key]
            out[key] = _Val(_coerce(s, value, source, parse_text=True), source)
        else:
            raise _unknown(source, str(key), key, [*tree, *SETTINGS_BY_ATTR])
    return out


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> AppConfig:
    """Defaults < file < environment < overrides, every value checked on the way in.

    ``overrides`` are CLI flags: flat attribute names (``{"max_concurrent_requests":
    20, "theme": "light"}``) or the nested file layout (``{"batch": {...}}``);
    ``None`` values are ignored so unset flags can be passed straight through.
    In files, top-level keys starting with ``_`` are ignored (comments for JSON).
    Empty environment variables count as unset.
    """
    values: dict[str, _Val] = {}
    if path is not None:
        _walk(read_config_file(path), _kind_sections().tree, "", str(path), values)
    values.update(_env_layer(os.environ if env is None else env))
    values.update(_override_layer(overrides or {}, "command line"))
    return _build(values)
