"""The fault soak, short (``python bench/soak.py faults`` runs the issue's full size).

A scan and an issue-sync against a loopback simulator answering 5xx, timeouts past the
client's timeout, resets and 5xx bursts, with secondary limits below the documented
ones and a core bucket smaller than the work: both complete, every item done or failed
with its reason, a replay with the faults off completes what failed, the findings are
the simulator's truth, and the server counted no request sent into a block or an
empty bucket.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

SOAK = Path(__file__).parents[2] / "bench" / "soak.py"


def load_soak():
    spec = importlib.util.spec_from_file_location("bench_soak", SOAK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_a_short_fault_soak_completes_with_zero_violations():
    result = await load_soak().fault_soak(items=30, sync_items=10, seed=7, scale=0.002)
    assert sum(result["faults_injected"].values()) > 0          # the faults were on
    assert result["scan_state"] == "completed" and result["scan_ok"], result
    assert result["findings_equal_truth"], result
    assert result["sync_state"] == "completed" and result["sync_ok"] and result["sync_items"] >= 10, result
    assert result["secondary_refusals"] > 0                     # blocks came (at fixed request numbers)
    assert result["violations"] == 0, result["violations_by_kind"]
