"""The retry policy's choice of machine for the next attempt."""

from __future__ import annotations

from typing import Any

from podtask._contract.resources import TaskRunSpec, TaskRunStatus
from podtask._contract.retry import next_attempt_machine


def _spec(retry: dict[str, Any]) -> TaskRunSpec:
    return TaskRunSpec.model_validate(
        {
            "taskId": "t",
            "version": "1",
            "image": "i",
            "module": "m",
            "machine": "small-1x",
            "queue": {"name": "q"},
            "retry": retry,
        }
    )


def _status(reason: str | None, machine: str | None = "medium-1x") -> TaskRunStatus:
    return TaskRunStatus.model_validate(
        {
            "attempt": 1,
            "machine": machine,
            "attempts": [{"number": 1, "pod": "p-1", "machine": "medium-1x", "reason": reason}],
        }
    )


def test_after_an_oom_the_policys_machine() -> None:
    spec = _spec({"outOfMemory": {"machine": "large-1x"}})
    assert next_attempt_machine(spec, _status("OOMKilled")) == "large-1x"


def test_otherwise_the_runs_machine_then_the_specs() -> None:
    oom_policy = _spec({"outOfMemory": {"machine": "large-1x"}})
    assert next_attempt_machine(oom_policy, _status("Error")) == "medium-1x"
    assert next_attempt_machine(_spec({}), _status("OOMKilled")) == "medium-1x"
    assert next_attempt_machine(_spec({"outOfMemory": {}}), _status("OOMKilled")) == "medium-1x"
    assert next_attempt_machine(_spec({}), _status("Error", machine=None)) == "small-1x"
    assert next_attempt_machine(oom_policy, TaskRunStatus()) == "small-1x"
