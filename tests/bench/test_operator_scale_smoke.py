"""`bench/operator_scale.py --quick`: the scale benchmark runs end to end at tiny sizes on the
simulated node and writes its figures (p5, p7) to the results file. No time is asserted: the
figures are the benchmark's to judge, in `make bench`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clusters import CLUSTERS

pytestmark = pytest.mark.component

BENCH = Path(__file__).resolve().parents[2] / "bench" / "operator_scale.py"


def test_the_scale_benchmark_writes_p5_and_p7(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    cluster = "real" if "real" in CLUSTERS else "embedded"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--cluster", cluster],
        env={**os.environ, "PODTASK_BENCH_RESULTS": str(results)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    written = json.loads(results.read_text())
    assert {"p5", "p7"} <= set(written)
    assert {"value", "goal", "met", "raw"} <= set(written["p7"])
    assert written["p7"]["raw"]["cluster"] == cluster
    assert written["p7"]["writes_per_run"] > 0
    bound = written["p7"]["raw"]["runs_per_s_bound_by_cpu"]
    assert bound["cores"] >= 1 and bound["all_parts"] > 0
    if cluster == "real":
        assert 0 < bound["all_parts"] < bound["kubernetes_parts"]
    assert written["p5"]["value"] > 0
    assert "many" in written["p5"]["raw"]["measured"]["bench/operator_scale.py"]
