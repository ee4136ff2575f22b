"""`bench/e2e_throughput.py` at its smallest (`--quick`): it runs through `podtask dev` and
writes p1 and p3 with their raw numbers (never judged here: a benchmark's figures are not a
test's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "e2e_throughput.py"


def test_the_end_to_end_benchmark_writes_p1_and_p3(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        env={**os.environ, "PODTASK_BENCH_RESULTS": str(results)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(results.read_text())
    assert set(figures) == {"p1", "p3"}
    assert figures["p1"]["raw"]["runs"] == 8 and figures["p1"]["raw"]["stages_ms"]
    assert figures["p3"]["raw"]["writes"] and "events_per_run" in figures["p3"]
    assert "reported → completed" in done.stdout  # the latency breakdown is printed
