"""The end-to-end benchmark's arithmetic, without I/O: the stages of a run from the moments
the system records, their percentiles, and the Kubernetes API writes counted by resource.

A run's moments, in the order a run goes through them (`MOMENTS`):

| moment | where it is recorded |
| --- | --- |
| trigger | the benchmark, as it sends the trigger |
| stored | the benchmark's watch of TaskRuns sees the TaskRun added |
| admitted | `status.attempts[0].startedAt`: the operator's clock as it starts the attempt |
| pod created | the benchmark's watch of pods sees the pod added |
| container started | the runner process's start (`/proc`, in the task's output) |
| fetched | the runner imports the task's module once it fetched its attempt (task's output) |
| task started | the task itself (its output) |
| reported | `status.report.reportedAt`: the API's clock as it takes the report |
| completed | the benchmark's watch of TaskRuns sees the phase `Completed` |

Each stage is the time from one moment to the next. Every clock is this machine's.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MOMENTS = (
    "trigger",
    "stored",
    "admitted",
    "pod created",
    "container started",
    "fetched",
    "task started",
    "reported",
    "completed",
)
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
# The resources of P3 (writes to TaskRuns and Pods, with their subresources).
RUN_AND_POD = frozenset({"taskruns", "pods"})
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<count>\d+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def _seconds(stamp: str | None) -> float | None:
    return None if stamp is None else datetime.fromisoformat(stamp).timestamp()


def run_moments(
    run: Mapping[str, Any],
    output: Mapping[str, Any],
    *,
    triggered: float,
    stored: float,
    pod_created: float,
    completed: float,
) -> dict[str, float]:
    """One run's moments (wall-clock seconds), from its TaskRun as stored at the end (`run`),
    the noop task's `output` and what the benchmark saw itself."""
    status = run.get("status") or {}
    attempts = status.get("attempts") or [{}]
    report = status.get("report") or {}
    found = {
        "trigger": triggered,
        "stored": stored,
        "admitted": _seconds(attempts[0].get("startedAt")),
        "pod created": pod_created,
        "container started": output.get("process_started"),
        "fetched": output.get("imported"),
        "task started": output.get("task_started"),
        "reported": _seconds(report.get("reportedAt")),
        "completed": completed,
    }
    missing = sorted(moment for moment, value in found.items() if value is None)
    if missing:
        raise ValueError(f"run {run['metadata']['name']} lacks {', '.join(missing)}")
    return {moment: float(value) for moment, value in found.items() if value is not None}


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0 to 100) by the nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


@dataclass(frozen=True)
class Stage:
    start: str
    end: str
    p50_ms: float
    p99_ms: float


def stages(runs: Iterable[Mapping[str, float]]) -> list[Stage]:
    """p50 and p99 of each stage (one moment to the next) and of the whole, over `runs`."""
    every = list(runs)
    if not every:
        return []
    pairs = [*itertools.pairwise(MOMENTS), (MOMENTS[0], MOMENTS[-1])]
    found = []
    for start, end in pairs:
        spans = [(run[end] - run[start]) * 1000 for run in every]
        found.append(Stage(start, end, percentile(spans, 50), percentile(spans, 99)))
    return found


def stage_table(found: Sequence[Stage]) -> str:
    lines = [f"{'stage':<40} {'p50 ms':>9} {'p99 ms':>9}"]
    for stage in found:
        what = f"{stage.start} → {stage.end}"
        lines.append(f"{what:<40} {stage.p50_ms:9.1f} {stage.p99_ms:9.1f}")
    return "\n".join(lines)


@dataclass(frozen=True, order=True)
class RequestKey:
    """One series of the cluster's `apiserver_request_total`."""

    resource: str  # "pods", "pods/status", "taskruns/status", … ("" for no resource)
    verb: str
    node: bool  # sent by the cluster's node (its kubelet), not by podtask's components


def request_counts(metrics_text: str) -> Counter[RequestKey]:
    """The request counts of an embedded cluster's /metrics, by resource, verb and sender."""
    counts: Counter[RequestKey] = Counter()
    for line in metrics_text.splitlines():
        sample = _SAMPLE.match(line.strip())
        if sample is None:
            continue
        labels = dict(_LABEL.findall(sample["labels"]))
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        key = RequestKey(resource, labels.get("verb", ""), labels.get("node") == "true")
        counts[key] += int(sample["count"])
    return counts


def writes_between(
    before: Counter[RequestKey], after: Counter[RequestKey]
) -> dict[RequestKey, int]:
    """The write requests made between two readings, by series."""
    return {
        key: after[key] - before[key]
        for key in sorted(after)
        if key.verb in WRITE_VERBS and after[key] > before[key]
    }


def run_and_pod_writes(writes: Mapping[RequestKey, int]) -> int:
    """P3's count: podtask's own writes to TaskRuns and Pods (not its node's, not Events)."""
    return sum(
        n for key, n in writes.items() if not key.node and key.resource.split("/")[0] in RUN_AND_POD
    )


def writes_table(writes: Mapping[RequestKey, int], runs: int) -> str:
    lines = [f"{'resource':<22} {'verb':<8} {'by':<8} {'per run':>8}"]
    for key, count in writes.items():
        by = "node" if key.node else "podtask"
        lines.append(f"{key.resource or '-':<22} {key.verb:<8} {by:<8} {count / runs:8.2f}")
    return "\n".join(lines)
