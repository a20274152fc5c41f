"""IOC lists shipped with batchdeck, as package data (read through importlib.resources).

They ship inside the package, not beside it, so an installed batchdeck (a wheel,
pipx) finds them: ``sample_configs/iocs/`` in a source checkout is a link to
this directory's files, for users who want a path to pass to ``--iocs``.
``SHAI_HULUD_2`` is the list the demo scans and the simulator plants.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: Wiz Research's list of npm versions compromised by Shai-Hulud 2.0 (see sample_configs/iocs/README.md)
SHAI_HULUD_2: Path = Path(str(resources.files(__name__).joinpath("shai-hulud-2-packages.csv")))

__all__ = ["SHAI_HULUD_2"]
