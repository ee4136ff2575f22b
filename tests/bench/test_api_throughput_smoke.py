"""A smoke run of bench/api_throughput.py at tiny sizes: it starts its cluster, the API and the
bare app, measures both, and records `p4` in the results file it is given. No time is
asserted: the figures of a run this small mean nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.component

BENCH = Path(__file__).resolve().parents[2] / "bench" / "api_throughput.py"


def test_the_api_benchmark_records_p4_with_both_sides_figures(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    env = {**os.environ, "PODTASK_BENCH_RESULTS": str(results)}
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    p4 = json.loads(results.read_text())["p4"]
    assert p4["goal"] == ">= 0.85"
    assert isinstance(p4["value"], float) and p4["value"] > 0
    for figure in ("api_rps", "bare_rps", "api_p50_ms", "api_p99_ms", "bare_p50_ms"):
        assert p4["raw"][figure] > 0
    assert "p4: trigger requests/s" in done.stdout
