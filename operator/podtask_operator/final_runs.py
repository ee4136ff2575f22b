"""The runs the TaskRun watch showed final while their attempt's pod had not ended: a slim copy
of each, so that the pod's end needs no read of the run. A final status changes no more (the
API completes a run with its runner's report, before the runner exits), so the copy is what a
read would return; what the pod's end does with it is post the completion's Event and count it
(`RunWriter.settle_completion`). A run whose pod ends before its final event is read, as any.

Pure: no I/O; bounded (`FINAL_RUNS_KEPT`, the oldest dropped: a run dropped is read instead).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

# Well above the pods that end in the moment between a run's final event and its pod's end.
FINAL_RUNS_KEPT = 2_000


def slim_final_run(run: Mapping[str, Any]) -> dict[str, Any]:
    """Of a final `run`, what settling its completion reads: its identity, its task and its
    status without the report's output (up to MAX_OUTPUT_BYTES, and read by nothing here)."""
    meta = run.get("metadata") or {}
    status = dict(run.get("status") or {})
    report = status.get("report")
    if isinstance(report, dict) and report.get("output") is not None:
        status["report"] = {**report, "output": None}
    if status.get("output") is not None:
        status["output"] = None
    return {
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta
        },
        "spec": {"taskId": (run.get("spec") or {}).get("taskId")},
        "status": status,
    }


class FinalRuns:
    def __init__(self, kept: int = FINAL_RUNS_KEPT) -> None:
        self._kept = kept
        self._runs: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._runs)

    def seen(self, run: Mapping[str, Any]) -> None:
        """The watch showed `run` final, its attempt's pod not ended yet."""
        name = run["metadata"]["name"]
        self._runs[name] = slim_final_run(run)
        self._runs.move_to_end(name)
        while len(self._runs) > self._kept:
            self._runs.popitem(last=False)

    def take(self, name: str, attempt: int | None) -> dict[str, Any] | None:
        """The slim copy of the final run `name`, once, when its pod of `attempt` ended."""
        run = self._runs.get(name)
        if run is None or attempt is None or run["status"].get("attempt") != attempt:
            return None
        del self._runs[name]
        return run

    def forget(self, name: str) -> None:
        self._runs.pop(name, None)
