"""A smoke run of bench/admission_cost.py with tiny sizes: it measures and writes `p2` (with
`cpu_ms_per_admission`) and `p5` into the results file. The figures themselves mean nothing at
this size and are not asserted; `make bench` measures them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_admission_benchmark_records_p2_and_p5(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "admission_cost.py"), "--quick"],
        cwd=ROOT,
        env={**os.environ, "PODTASK_BENCH_RESULTS": str(results)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    recorded = json.loads(results.read_text())
    p2 = recorded["p2"]
    assert p2["goal"] == "<= 1.2; cpu_ms_per_admission <= 5" and p2["cpu_ms_per_admission"] > 0
    assert set(p2["raw"]) == {"5_waiting", "20_waiting"}
    assert recorded["p5"]["goal"] == "< 150" and recorded["p5"]["value"] > 0
