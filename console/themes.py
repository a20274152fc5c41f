"""Themes as data files, loaded by name.

Why data files: a theme is a palette, not code. Each ``themes/NAME.toml`` (package data
of ``console.builtin_themes``, a link to the repository's ``themes/``) holds
the Textual theme colours (``[colors]``), a ``dark`` flag and the chart colours
(``[chart]``), so a user can add one by dropping a file into
``<user config dir>/batchdeck/themes/`` (or pass a path to ``--theme``) without
touching Python. Chart colours travel as Textual theme variables
(``chart-throughput``, ``chart-error-1``...), so the charts follow a theme
switch the same way CSS does. Bad files fail with one line naming the file and
the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import platformdirs
from textual.color import Color, ColorParseError
from textual.theme import Theme

from engine.errors import InputError

COLOR_KEYS = ("primary", "secondary", "accent", "background", "surface", "panel", "foreground",
              "success", "warning", "error")
CHART_KEYS = ("throughput", "p50", "p95", "batch_size", "concurrency")
BUILTIN_ORDER = ("dark", "light", "high-contrast")   # the order `t` cycles through

# Used when a theme (e.g. one of Textual's own) does not set chart colours.
DEFAULT_CHART = {
    "throughput": "#58a6ff", "p50": "#3fb950", "p95": "#e3b341",
    "batch_size": "#a371f7", "concurrency": "#39c5cf",
}
DEFAULT_ERRORS = ("#f85149", "#e3b341", "#a371f7", "#39c5cf", "#ff7b72", "#79c0ff", "#56d364", "#8b949e")


@dataclass(frozen=True, slots=True)
class ChartColours:
    throughput: tuple[int, int, int]
    p50: tuple[int, int, int]
    p95: tuple[int, int, int]
    batch_size: tuple[int, int, int]
    concurrency: tuple[int, int, int]
    errors: tuple[tuple[int, int, int], ...]


def builtin_dir() -> Path:
    return Path(str(resources.files("console.builtin_themes")))


def user_dir() -> Path:
    return Path(platformdirs.user_config_dir("batchdeck")) / "themes"


def _search_dirs() -> list[Path]:
    return [builtin_dir(), user_dir()]


def theme_files() -> dict[str, Path]:
    """Every theme file found, by name (a user file overrides a built-in one)."""
    found: dict[str, Path] = {}
    for folder in _search_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found[path.stem] = path
    return found


def _colour(path: Path, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise InputError(f"{path}: {key} = {value!r}: expected a colour string such as \"#1f2328\"")
    try:
        Color.parse(value)
    except ColorParseError:
        raise InputError(f"{path}: {key} = {value!r}: not a colour (use #rrggbb or a colour name)") from None
    return value


def theme_from_file(path: str | Path, name: str | None = None) -> Theme:
    """Parse one theme file into a Textual ``Theme`` (chart colours as variables)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read theme file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(data) - {"name", "dark", "colors", "chart"}
    if unknown:
        raise InputError(f"{path}: unknown key {sorted(unknown)[0]!r} (allowed: name, dark, colors, chart)")
    colors = data.get("colors", {})
    if not isinstance(colors, dict) or "primary" not in colors:
        raise InputError(f"{path}: colors.primary is required")
    for key in colors:
        if key not in COLOR_KEYS:
            raise InputError(f"{path}: colors.{key}: unknown colour (allowed: {', '.join(COLOR_KEYS)})")
    dark = data.get("dark", True)
    if not isinstance(dark, bool):
        raise InputError(f"{path}: dark = {dark!r}: expected true or false")
    variables: dict[str, str] = {}
    chart = data.get("chart", {})
    if not isinstance(chart, dict):
        raise InputError(f"{path}: chart must be a table")
    for key, value in chart.items():
        if key == "errors":
            if not isinstance(value, list) or not value:
                raise InputError(f"{path}: chart.errors: expected a non-empty list of colours")
            for i, item in enumerate(value, 1):
                variables[f"chart-error-{i}"] = _colour(path, f"chart.errors[{i - 1}]", item)
        elif key in CHART_KEYS:
            variables[f"chart-{key.replace('_', '-')}"] = _colour(path, f"chart.{key}", value)
        else:
            raise InputError(f"{path}: chart.{key}: unknown chart colour (allowed: {', '.join(CHART_KEYS)}, errors)")
    colour = {key: _colour(path, f"colors.{key}", colors[key]) for key in colors}
    # Each colour by name (not **colour): Theme also takes bools and floats, which a dict of
    # strings must not be able to reach; a colour the file leaves out stays Theme's default (None).
    return Theme(
        name=name or str(data.get("name") or path.stem), dark=dark, variables=variables,
        primary=colour["primary"], secondary=colour.get("secondary"), accent=colour.get("accent"),
        background=colour.get("background"), surface=colour.get("surface"), panel=colour.get("panel"),
        foreground=colour.get("foreground"), success=colour.get("success"), warning=colour.get("warning"),
        error=colour.get("error"),
    )


def load_theme(name_or_path: str) -> Theme:
    """A theme by name (built-in or user dir) or by path to a ``.toml`` file."""
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        return theme_from_file(name_or_path)
    files = theme_files()
    if name_or_path not in files:
        raise InputError(f"--theme {name_or_path}: no such theme (available: {', '.join(theme_names())})")
    return theme_from_file(files[name_or_path], name_or_path)


def theme_names() -> list[str]:
    """Built-ins first in cycling order, then any other found file, sorted."""
    files = theme_files()
    first = [n for n in BUILTIN_ORDER if n in files]
    return first + sorted(n for n in files if n not in first)


def load_all(extra: str | None = None) -> list[Theme]:
    """Every theme file found, plus ``extra`` (a name or path) if it is not among them."""
    themes = [load_theme(n) for n in theme_names()]
    if extra and extra not in {t.name for t in themes}:
        themes.append(load_theme(extra))
    return themes


def _rgb(value: str | None, fallback: str) -> tuple[int, int, int]:
    try:
        return Color.parse(value or fallback).rgb
    except ColorParseError:
        return Color.parse(fallback).rgb


def chart_colours(variables: dict[str, str]) -> ChartColours:
    """Chart colours from an app's theme variables (defaults for foreign themes)."""
    picked = {k: _rgb(variables.get(f"chart-{k.replace('_', '-')}"), DEFAULT_CHART[k]) for k in CHART_KEYS}
    errors = []
    i = 1
    while f"chart-error-{i}" in variables:
        errors.append(_rgb(variables[f"chart-error-{i}"], DEFAULT_ERRORS[0]))
        i += 1
    return ChartColours(errors=tuple(errors) or tuple(_rgb(c, c) for c in DEFAULT_ERRORS), **picked)
