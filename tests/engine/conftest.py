from __future__ import annotations

import pytest

from engine.api import Engine
from engine.config import load_config


def fast_config(**overrides):
    """Small retry delays so retried items come back within the test."""
    base = {"retry_delay_base": 0.1, "max_concurrent_requests": 20, "checkpoint_interval": 500}
    return load_config(None, env={}, overrides={**base, **overrides})


@pytest.fixture
async def engine(tmp_path):
    eng = await Engine.open(tmp_path / "runs.db", fast_config())
    yield eng
    await eng.close()
