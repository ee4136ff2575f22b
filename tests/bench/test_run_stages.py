"""The end-to-end benchmark's arithmetic (`bench/run_stages.py`): a run's stages from the
moments the system records, and the writes counted by resource from the cluster's /metrics."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from run_stages import (
    MOMENTS,
    RequestKey,
    percentile,
    request_counts,
    run_and_pod_writes,
    run_moments,
    stages,
    writes_between,
)

RUN = {
    "metadata": {"name": "run-1"},
    "status": {
        "attempts": [{"number": 1, "startedAt": "2026-01-01T00:00:00.500000+00:00"}],
        "report": {"attempt": 1, "ok": True, "reportedAt": "2026-01-01T00:00:03+00:00"},
    },
}
T0 = 1767225600.0  # 2026-01-01T00:00:00Z


def test_a_runs_moments_come_from_its_taskrun_its_output_and_what_the_benchmark_saw() -> None:
    output = {"process_started": T0 + 1, "imported": T0 + 2, "task_started": T0 + 2.5}
    moments = run_moments(
        RUN, output, triggered=T0 - 0.2, stored=T0 - 0.1, pod_created=T0 + 0.6, completed=T0 + 4
    )
    assert list(moments) == list(MOMENTS)
    assert moments["admitted"] == T0 + 0.5
    assert moments["reported"] == T0 + 3
    found = {(s.start, s.end): round(s.p50_ms) for s in stages([moments])}
    assert found[("admitted", "pod created")] == 100
    assert found[("reported", "completed")] == 1000
    assert found[("trigger", "completed")] == 4200


def test_a_run_without_a_moment_says_which() -> None:
    with pytest.raises(ValueError, match="container started, fetched"):
        run_moments(RUN, {"task_started": T0}, triggered=0, stored=0, pod_created=0, completed=0)


def test_percentiles_by_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0,
        99.0,
        100.0,
    )
    assert percentile([3.0], 99) == 3.0


def _sample(verb: str, group: str, resource: str, subresource: str, node: str, n: int) -> str:
    labels = f'verb="{verb}",group="{group}",resource="{resource}",subresource="{subresource}"'
    return f'apiserver_request_total{{{labels},node="{node}"}} {n}'


METRICS = "\n".join(
    [
        "# TYPE apiserver_request_total counter",
        _sample("create", "podtask.dev", "taskruns", "", "false", 4),
        _sample("patch", "podtask.dev", "taskruns", "status", "false", 9),
        _sample("patch", "", "pods", "status", "true", 7),
        _sample("create", "", "pods", "", "false", 3),
        _sample("create", "", "events", "", "false", 3),
        _sample("get", "", "pods", "", "false", 30),
    ]
)


def test_writes_are_counted_by_resource_verb_and_sender() -> None:
    after = request_counts(METRICS)
    before: Counter[RequestKey] = Counter({RequestKey("taskruns/status", "patch", False): 3})
    writes = writes_between(before, after)
    assert writes[RequestKey("taskruns/status", "patch", False)] == 6
    assert RequestKey("pods", "get", False) not in writes
    # P3: podtask's own writes to TaskRuns and Pods; not the node's, not Events.
    assert run_and_pod_writes(writes) == 4 + 6 + 3
