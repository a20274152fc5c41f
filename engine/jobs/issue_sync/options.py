"""The ``issue_sync:`` section of the configuration file: what a team sets once, not on every command.

::

    issue_sync:
      links: sub-issues            # or checklist (servers without sub-issues)
      add_labels: "synced, plan"   # added to every issue, comma-separated
      write_back: false            # write each issue's URL into its file after a sync
      pacing:
        creates_per_minute: 80     # at most GitHub's documented 80; lower to leave room for other tools
        creates_per_hour: 500      # at most GitHub's documented 500
      reconcile:
        recent_issues: 300         # newest issues read when search does not (yet) find a lost create

Layered like every setting (defaults < file < ``BATCHDECK_ISSUE_SYNC_*`` < flags)
by the engine's config machinery, with its one-line errors. Flags of ``batchdeck
sync`` (``--links``, ``--write-back``) override the file for one command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.config import Setting
from engine.github.lanes import CONTENT_PER_HOUR, CONTENT_PER_MINUTE
from engine.kinds import ConfigSection

SECTION = "issue_sync"
LINK_MODES = ("sub-issues", "checklist")


def _setting(path: str, attr: str, kind: str, lo: float | None = None, hi: float | None = None,
             choices: tuple[str, ...] = ()) -> Setting:
    return Setting(SECTION, tuple(path.split(".")), attr, kind, f"ISSUE_SYNC_{attr.upper()}", lo, hi, choices)


DEFAULTS: Mapping[str, Any] = {
    "links": "sub-issues", "add_labels": None, "write_back": False,
    "creates_per_minute": float(CONTENT_PER_MINUTE), "creates_per_hour": CONTENT_PER_HOUR, "recent_issues": 300,
}

CONFIG = ConfigSection(
    name=SECTION,
    settings=(
        _setting("links", "links", "choice", choices=LINK_MODES),
        _setting("add_labels", "add_labels", "str"),
        _setting("write_back", "write_back", "bool"),
        _setting("pacing.creates_per_minute", "creates_per_minute", "float", 1, CONTENT_PER_MINUTE),
        _setting("pacing.creates_per_hour", "creates_per_hour", "int", 1, CONTENT_PER_HOUR),
        _setting("reconcile.recent_issues", "recent_issues", "int", 10, 5000),
    ),
    defaults=DEFAULTS,
)


@dataclass(frozen=True)
class SyncOptions:
    links: str
    add_labels: tuple[str, ...]
    write_back: bool
    creates_per_minute: float
    creates_per_hour: int
    recent_issues: int

    @property
    def paced_below_github(self) -> bool:
        """A cap of our own below GitHub's documented limits (the write lane keeps GitHub's)."""
        return self.creates_per_minute < CONTENT_PER_MINUTE or self.creates_per_hour < CONTENT_PER_HOUR


def sync_options(config: Any) -> SyncOptions:
    """The section's values from a loaded configuration, defaults filled in."""
    values = {**DEFAULTS, **dict(config.kind(SECTION))}
    labels = tuple(dict.fromkeys(x.strip() for x in str(values["add_labels"] or "").split(",") if x.strip()))
    return SyncOptions(links=values["links"], add_labels=labels, write_back=bool(values["write_back"]),
                       creates_per_minute=float(values["creates_per_minute"]),
                       creates_per_hour=int(values["creates_per_hour"]), recent_issues=int(values["recent_issues"]))
