"""`FinalRuns`: the slim copies of final runs whose pod is still to end (pure)."""

from __future__ import annotations

from typing import Any

from podtask._contract.resources import TaskRunStatus
from podtask._contract.run_endings import completed_by_report
from podtask_operator.final_runs import FinalRuns, slim_final_run
from podtask_operator.housekeeping import run_is_final


def _run(name: str, attempt: int = 1, phase: str = "Completed") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"u-{name}",
            "resourceVersion": "7",
            "managedFields": [{"manager": "api"}],
            "labels": {"x": "y"},
        },
        "spec": {"taskId": "t", "payload": {"big": "x" * 1000}},
        "status": {
            "phase": phase,
            "attempt": attempt,
            "output": {"big": "y" * 1000},
            "attempts": [
                {
                    "number": attempt,
                    "pod": f"{name}-{attempt}",
                    "machine": "micro",
                    "reason": "Completed",
                }
            ],
            "report": {
                "attempt": attempt,
                "ok": True,
                "output": {"big": "y" * 1000},
                "reportedAt": "2026-01-01T00:00:00Z",
            },
        },
    }


def test_a_slim_copy_keeps_what_settling_reads_and_drops_the_outputs() -> None:
    slim = slim_final_run(_run("a"))
    assert slim["metadata"] == {
        "name": "a",
        "namespace": "ns",
        "uid": "u-a",
        "resourceVersion": "7",
    }
    assert slim["spec"] == {"taskId": "t"}
    assert slim["status"]["output"] is None and slim["status"]["report"]["output"] is None
    status = TaskRunStatus.model_validate(slim["status"])
    assert completed_by_report(status) == completed_by_report(
        TaskRunStatus.model_validate(_run("a")["status"])
    )
    assert run_is_final(slim) and not run_is_final(_run("b", phase="Executing"))


def test_a_copy_is_taken_once_for_its_attempts_pod_and_the_oldest_go_first() -> None:
    runs = FinalRuns(kept=2)
    runs.seen(_run("a", attempt=2))
    assert runs.take("a", 1) is None  # an older attempt's pod
    assert runs.take("a", None) is None
    assert runs.take("a", 2) is not None
    assert runs.take("a", 2) is None  # once
    for name in ("b", "c", "d"):
        runs.seen(_run(name))
    assert len(runs) == 2 and runs.take("b", 1) is None  # dropped: read instead
    runs.forget("c")
    assert runs.take("c", 1) is None and runs.take("d", 1) is not None
