"""Put this directory on ``sys.path`` so the tests can import ``ast_helpers``
(pytest runs with ``--import-mode=importlib``, which does not do it)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
