"""Configuration: layers, precedence, and the one-line errors a user reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import (
    SETTINGS,
    AppConfig,
    BatchConfig,
    BatchStrategy,
    ConfigError,
    load_config,
)
from engine.errors import InputError

SAMPLES = Path(__file__).resolve().parents[2] / "sample_configs"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# -- defaults and layout -------------------------------------------------------

def test_defaults_are_the_guides():
    c = load_config(env={})
    b = c.batch
    assert (b.max_concurrent_requests, b.max_concurrent_repos) == (10, 3)
    assert (b.default_batch_size, b.max_batch_size, b.min_batch_size) == (10, 50, 1)
    assert (b.rate_limit_buffer, b.retry_attempts, b.retry_delay_base) == (0.8, 3, 1.0)
    assert (b.max_memory_usage_mb, b.stream_large_files_threshold) == (500, 1048576)
    assert b.default_strategy is BatchStrategy.ADAPTIVE
    assert b.enable_cross_repo_batching and b.enable_file_prioritization and b.enable_performance_monitoring
    assert not b.log_batch_metrics
    assert b.checkpoint_interval == 100
    assert (b.breaker_failure_threshold, b.breaker_recovery_timeout, b.breaker_half_open_probes) == (5, 30.0, 1)
    assert c.github.api_url == "https://api.github.com" and c.github.transport == "aiohttp"
    assert c.github.time_scale == 1.0 and c.console.theme == "dark" and c.console.refresh_hz == 4.0


def test_to_dict_is_the_nested_file_layout_and_round_trips(tmp_path):
    c = load_config(env={}, overrides={"max_concurrent_requests": 7, "keymap": {"pause": "p"},
                                       "default_strategy": "conservative", "time_scale": 0.01})
    d = c.to_dict()
    assert d["batch"]["concurrency"]["max_concurrent_requests"] == 7
    assert d["batch"]["strategy"]["default"] == "conservative"
    assert d["batch"]["circuit_breaker"] == {"failure_threshold": 5, "recovery_timeout": 30.0,
                                             "half_open_probes": 1}
    assert d["batch"]["checkpoints"] == {"interval": 100}
    assert d["github"]["time_scale"] == 0.01
    assert d["console"]["keymap"] == {"pause": "p"}
    assert AppConfig.from_dict(d) == c
    # and it loads back as a file
    p = write(tmp_path, "dumped.json", json.dumps(d))
    assert load_config(p, env={}) == c


def test_tokens_are_not_configuration():
    assert not any("token" in s.attr for s in SETTINGS)
    with pytest.raises(ConfigError, match="unknown key github.token"):
        AppConfig.from_dict({"github": {"token": "ghp_x"}})


# -- precedence ----------------------------------------------------------------

def test_precedence_flags_over_env_over_file_over_defaults(tmp_path):
    p = write(tmp_path, "c.yaml", """
batch:
  concurrency: {max_concurrent_requests: 15, max_concurrent_repos: 4}
  performance: {retry_attempts: 5}
github: {api_url: "http://127.0.0.1:9000"}
""")
    env = {"BATCHDECK_MAX_CONCURRENT_REQUESTS": "20", "BATCHDECK_MAX_CONCURRENT_REPOS": "6"}
    c = load_config(p, env=env, overrides={"max_concurrent_requests": 30, "retry_delay_base": None})
    assert c.batch.max_concurrent_requests == 30      # flag beats env and file
    assert c.batch.max_concurrent_repos == 6          # env beats file
    assert c.batch.retry_attempts == 5                # file beats default
    assert c.batch.retry_delay_base == 1.0            # default (None flag ignored)
    assert c.github.api_url == "http://127.0.0.1:9000"


def test_nested_overrides_are_accepted():
    c = load_config(env={}, overrides={"batch": {"batch_sizes": {"default": 20, "max": 40}},
                                       "console": {"theme": "light"}})
    assert (c.batch.default_batch_size, c.batch.max_batch_size, c.console.theme) == (20, 40, "light")


def test_seed_env_names_are_aliases_and_batchdeck_wins():
    c = load_config(env={"GITHUB_IOC_SCANNER_MAX_CONCURRENT_REQUESTS": "15",
                         "GITHUB_IOC_SCANNER_BATCH_STRATEGY": "conservative",
                         "GITHUB_IOC_SCANNER_RETRY_ATTEMPTS": "6",
                         "BATCHDECK_RETRY_ATTEMPTS": "2"})
    assert c.batch.max_concurrent_requests == 15
    assert c.batch.default_strategy is BatchStrategy.CONSERVATIVE
    assert c.batch.retry_attempts == 2


@pytest.mark.parametrize("raw,expected", [("true", True), ("1", True), ("YES", True),
                                          ("false", False), ("0", False), ("no", False)])
def test_env_booleans(raw, expected):
    c = load_config(env={"BATCHDECK_LOG_BATCH_METRICS": raw, "BATCHDECK_ENABLE_CROSS_REPO_BATCHING": raw})
    assert c.batch.log_batch_metrics is expected and c.batch.enable_cross_repo_batching is expected


def test_every_env_name_of_the_guide_is_read():
    env = {
        "BATCHDECK_MAX_CONCURRENT_REQUESTS": "12", "BATCHDECK_MAX_CONCURRENT_REPOS": "4",
        "BATCHDECK_DEFAULT_BATCH_SIZE": "11", "BATCHDECK_MAX_BATCH_SIZE": "60",
        "BATCHDECK_MIN_BATCH_SIZE": "2", "BATCHDECK_RATE_LIMIT_BUFFER": "0.7",
        "BATCHDECK_RETRY_ATTEMPTS": "4", "BATCHDECK_RETRY_DELAY_BASE": "1.5",
        "BATCHDECK_MAX_MEMORY_MB": "750", "BATCHDECK_STREAM_THRESHOLD_BYTES": "2097152",
        "BATCHDECK_BATCH_STRATEGY": "parallel", "BATCHDECK_ENABLE_FILE_PRIORITIZATION": "false",
        "BATCHDECK_ENABLE_PERFORMANCE_MONITORING": "false", "BATCHDECK_CHECKPOINT_INTERVAL": "50",
        "BATCHDECK_API_URL": "http://localhost:1", "BATCHDECK_THEME": "light",
        "BATCHDECK_TIME_SCALE": "0.001", "BATCHDECK_TRANSPORT": "httpx",
    }
    c = load_config(env=env)
    b = c.batch
    assert (b.max_concurrent_requests, b.max_concurrent_repos, b.default_batch_size) == (12, 4, 11)
    assert (b.max_batch_size, b.min_batch_size, b.rate_limit_buffer) == (60, 2, 0.7)
    assert (b.retry_attempts, b.retry_delay_base, b.max_memory_usage_mb) == (4, 1.5, 750)
    assert b.stream_large_files_threshold == 2097152 and b.default_strategy is BatchStrategy.PARALLEL
    assert not b.enable_file_prioritization and not b.enable_performance_monitoring
    assert b.checkpoint_interval == 50
    assert (c.github.api_url, c.github.time_scale, c.github.transport) == ("http://localhost:1", 0.001, "httpx")
    assert c.console.theme == "light"


def test_empty_env_variable_counts_as_unset():
    assert load_config(env={"BATCHDECK_MAX_CONCURRENT_REQUESTS": ""}).batch.max_concurrent_requests == 10


# -- range errors: every ranged field, both ends, from file and from env ------

RANGED = [s for s in SETTINGS if s.lo is not None]


def _outside(s, below: bool):
    if s.kind == "int":
        return int(s.lo) - 1 if below else int(s.hi) + 1
    return s.lo / 2 if below else s.hi * 2


def _nested(s, value):
    d: dict = {}
    node = d.setdefault(s.section, {})
    for part in s.path[:-1]:
        node = node.setdefault(part, {})
    node[s.path[-1]] = value
    return d


@pytest.mark.parametrize("below", [True, False], ids=["below_min", "above_max"])
@pytest.mark.parametrize("s", RANGED, ids=[s.attr for s in RANGED])
def test_out_of_range_in_file_names_file_key_value_and_range(tmp_path, s, below):
    value = _outside(s, below)
    p = write(tmp_path, "c.json", json.dumps(_nested(s, value)))
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(str(p))
    assert s.key in msg and repr(value) in msg
    assert f"{s.lo}..{s.hi}" in msg
    assert "out of range" in msg


@pytest.mark.parametrize("s", [s for s in RANGED if s.env], ids=lambda s: s.attr)
def test_out_of_range_in_env_names_the_variable(s):
    var = "BATCHDECK_" + s.env
    with pytest.raises(ConfigError) as e:
        load_config(env={var: str(_outside(s, below=False))})
    msg = str(e.value)
    assert msg.startswith(var + ":") and s.key in msg and f"{s.lo}..{s.hi}" in msg


def test_range_bounds_themselves_are_accepted():
    for s in RANGED:
        for edge in (s.lo, s.hi):
            value = int(edge) if s.kind == "int" else edge
            overrides = {s.attr: value}
            if s.attr == "default_batch_size":
                overrides["max_batch_size"] = 200
            if s.attr == "max_batch_size":
                overrides["default_batch_size"] = min(10, value)
            got = load_config(env={}, overrides=overrides)
            assert getattr(getattr(got, s.section), s.attr) == value


# -- wrong types ---------------------------------------------------------------

@pytest.mark.parametrize("key,value,expect", [
    ("max_concurrent_requests", True, "not an integer"),      # a bool is not an int
    ("max_concurrent_requests", 2.5, "not an integer"),
    ("max_concurrent_requests", "15", "not an integer"),      # quoted in a file: wrong type
    ("rate_limit_buffer", "abc", "not a number"),
    ("rate_limit_buffer", False, "not a number"),
    ("log_batch_metrics", "maybe", "not a boolean"),
    ("log_batch_metrics", 1, "not a boolean"),
    ("default_strategy", "fastest", "one of sequential, parallel, adaptive, aggressive, conservative"),
    ("transport", "requests", "one of aiohttp, httpx"),
    ("api_url", "api.github.com", "URL"),
    ("keymap", ["q"], "mapping"),
])
def test_wrong_type_in_file(tmp_path, key, value, expect):
    s = next(s for s in SETTINGS if s.attr == key)
    p = write(tmp_path, "c.json", json.dumps(_nested(s, value)))
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    msg = str(e.value)
    assert msg.startswith(str(p)) and s.key in msg and expect in msg and "\n" not in msg


@pytest.mark.parametrize("var,value", [("BATCHDECK_RATE_LIMIT_BUFFER", "abc"),
                                       ("BATCHDECK_RETRY_ATTEMPTS", "three"),
                                       ("BATCHDECK_RETRY_DELAY_BASE", "nan"),
                                       ("GITHUB_IOC_SCANNER_LOG_BATCH_METRICS", "perhaps")])
def test_wrong_type_in_env(var, value):
    with pytest.raises(ConfigError, match=rf"^{var}: .*{value!r}"):
        load_config(env={var: value})


def test_strategy_names_are_case_insensitive(tmp_path):
    p = write(tmp_path, "c.yaml", "batch:\n  strategy:\n    default: AGGRESSIVE\n")
    assert load_config(p, env={}).batch.default_strategy is BatchStrategy.AGGRESSIVE


# -- unknown keys, cross-field rules, files ------------------------------------

def test_unknown_key_suggests_the_closest_name(tmp_path):
    p = write(tmp_path, "c.yaml", "batch:\n  concurrency:\n    max_concurent_requests: 5\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    msg = str(e.value)
    assert msg.startswith(str(p)) and "batch.concurrency.max_concurent_requests" in msg
    assert "did you mean batch.concurrency.max_concurrent_requests?" in msg


def test_unknown_section_and_unknown_flag_suggest_too(tmp_path):
    p = write(tmp_path, "c.yaml", "bacth:\n  concurrency: {}\n")
    with pytest.raises(ConfigError, match="unknown key bacth; did you mean batch"):
        load_config(p, env={})
    with pytest.raises(ConfigError, match="^command line: unknown key max_batchsize; did you mean max_batch_size"):
        load_config(env={}, overrides={"max_batchsize": 3})


def test_unknown_key_without_close_match_lists_the_known_ones():
    with pytest.raises(ConfigError, match="known keys here: .*concurrency"):
        AppConfig.from_dict({"batch": {"zzz": 1}})


@pytest.mark.parametrize("sizes,bad", [
    ({"min": 8, "default": 5}, "batch.batch_sizes.min = 8"),
    ({"default": 60, "max": 50}, "batch.batch_sizes.default = 60"),
    ({"min": 5, "default": 5, "max": 4}, "batch.batch_sizes.default = 5"),
])
def test_min_default_max_must_be_ordered(tmp_path, sizes, bad):
    p = write(tmp_path, "c.yaml", "batch:\n  batch_sizes: " + json.dumps(sizes) + "\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    msg = str(e.value)
    assert msg.startswith(str(p)) and bad in msg and "min <= default <= max" in msg


def test_min_greater_than_max_across_layers_names_both_sources(tmp_path):
    p = write(tmp_path, "c.yaml", "batch:\n  batch_sizes: {min: 5, default: 5}\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, env={"BATCHDECK_MAX_BATCH_SIZE": "4"})
    assert str(p) in str(e.value) and "BATCHDECK_MAX_BATCH_SIZE" in str(e.value)


def test_malformed_yaml_names_file_and_line(tmp_path):
    p = write(tmp_path, "c.yaml", "batch:\n  concurrency:\n    max_concurrent_requests: [1, 2\n  x: 1\n")
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    msg = str(e.value)
    assert msg.startswith(f"{p}:4:") and "malformed YAML" in msg and "\n" not in msg


def test_malformed_json_names_file_and_line(tmp_path):
    p = write(tmp_path, "c.json", '{\n  "batch": {\n    "concurrency": {,}\n  }\n}\n')
    with pytest.raises(ConfigError) as e:
        load_config(p, env={})
    assert str(e.value).startswith(f"{p}:3:") and "malformed JSON" in str(e.value)


def test_json_file_loads(tmp_path):
    p = write(tmp_path, "c.json", json.dumps({"batch": {"performance": {"rate_limit_buffer": 0.5}},
                                              "github": {"time_scale": 0.01}}))
    c = load_config(p, env={})
    assert c.batch.rate_limit_buffer == 0.5 and c.github.time_scale == 0.01


def test_missing_file_and_bad_suffix(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", env={})
    p = write(tmp_path, "c.toml", "")
    with pytest.raises(ConfigError, match=r"unsupported config file type '\.toml'"):
        load_config(p, env={})


def test_top_level_must_be_a_mapping(tmp_path):
    p = write(tmp_path, "c.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level .*expected a mapping"):
        load_config(p, env={})


def test_empty_file_and_empty_sections_mean_defaults(tmp_path):
    assert load_config(write(tmp_path, "a.yaml", ""), env={}) == AppConfig()
    assert load_config(write(tmp_path, "b.yaml", "batch:\n"), env={}) == AppConfig()


def test_config_error_is_an_input_error_and_dataclasses_validate_too():
    assert issubclass(ConfigError, InputError)
    with pytest.raises(ConfigError, match="batch.concurrency.max_concurrent_requests = 0"):
        BatchConfig(max_concurrent_requests=0)
    with pytest.raises(ConfigError, match="min <= default <= max"):
        BatchConfig(default_batch_size=60)
    assert BatchConfig(default_strategy="parallel").default_strategy is BatchStrategy.PARALLEL


# -- the shipped sample configurations -----------------------------------------

EXPECTED_SAMPLES = {
    "high-performance-server.yaml": {"max_concurrent_requests": 25, "default_strategy": "aggressive",
                                     "stream_large_files_threshold": 5242880},
    "resource-constrained.yaml": {"max_memory_usage_mb": 200, "enable_cross_repo_batching": False,
                                  "default_strategy": "conservative"},
    "rate-limited-token.yaml": {"max_concurrent_requests": 3, "rate_limit_buffer": 0.5,
                                "retry_delay_base": 3.0},
    "development.yaml": {"default_batch_size": 6, "log_batch_metrics": True},
    "batch_config.yaml": {"max_concurrent_requests": 15, "default_batch_size": 12},
    "batch_config.json": {"max_concurrent_requests": 15, "default_batch_size": 12},
}
SAMPLE_FILES = sorted(p for p in SAMPLES.iterdir() if p.suffix in (".yaml", ".yml", ".json"))


def test_the_guides_samples_are_all_shipped():
    assert set(EXPECTED_SAMPLES) <= {p.name for p in SAMPLE_FILES}


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.name)
def test_every_sample_config_loads(path):
    c = load_config(path, env={})
    b = c.batch
    assert b.min_batch_size <= b.default_batch_size <= b.max_batch_size
    for attr, value in EXPECTED_SAMPLES.get(path.name, {}).items():
        assert getattr(b, attr) == value, (path.name, attr)
    text = path.read_text()
    assert text.lstrip().startswith("#") or '"_comment"' in text.split("\n", 2)[1], "needs a header comment"
