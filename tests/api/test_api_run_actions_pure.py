"""Unit tests of the run actions' decisions: who may be canceled or rescheduled, what a
replay copies, and the run view's new fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_fixtures import HELLO

from podtask._contract.resources import FINAL_PHASES, RunPhase
from podtask._contract.wire import LABEL_QUEUE, LABEL_TASK
from podtask_api.errors import ApiError
from podtask_api.run_actions import (
    ReplayRequest,
    RescheduleRequest,
    build_replay,
    cancel_conflict,
    cancel_patch,
    reschedule_conflict,
    rescheduled_until,
    run_phase,
    run_spec,
)
from podtask_api.run_views import run_view
from podtask_api.task_runs import build_task_run
from podtask_api.trigger_requests import TriggerOptions, TriggerRequest

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _run(phase: str | None = None, **options: Any) -> dict[str, Any]:
    request = TriggerRequest(payload={"n": 1}, options=TriggerOptions.model_validate(options))
    run = build_task_run(HELLO, request, "run-old", parent_run_id="run-parent", now=NOW)
    if phase is not None:
        run["status"] = {"phase": phase}
    return run


@pytest.mark.parametrize("phase", list(RunPhase))
def test_only_a_finished_run_refuses_a_cancel(phase: RunPhase) -> None:
    conflict = cancel_conflict(_run(phase))
    if phase in FINAL_PHASES:
        assert conflict is not None and (conflict.status, conflict.code) == (409, "run_finished")
    else:
        assert conflict is None
    assert cancel_conflict(_run()) is None


def test_a_repeated_cancel_changes_nothing() -> None:
    run = _run("Executing")
    assert cancel_patch(run, NOW) == {"spec": {"cancelRequestedAt": "2024-05-01T12:00:00Z"}}
    run["spec"]["cancelRequestedAt"] = "2024-05-01T11:00:00Z"
    assert cancel_patch(run, NOW) is None


def test_a_replay_copies_the_snapshot_and_drops_what_belonged_to_the_old_trigger() -> None:
    old = _run(
        "Failed",
        idempotencyKey="k",
        delay=60,
        tags=["a"],
        metadata={"m": 1},
        priority=2,
        concurrencyKey="c",
        machine="large-1x",
    )
    old["spec"]["cancelRequestedAt"] = "2024-05-01T12:00:01Z"
    replay = build_replay(old, "run-new", now=datetime(2024, 5, 2, tzinfo=UTC))
    assert replay["metadata"] == {
        "name": "run-new",
        "labels": {LABEL_TASK: "hello-world", LABEL_QUEUE: "greetings"},
    }
    dropped = {"idempotencyKey", "delayUntil", "parentRunId", "cancelRequestedAt", "triggeredAt"}
    assert dropped <= set(old["spec"])
    expected = {k: v for k, v in old["spec"].items() if k not in dropped}
    assert replay["spec"] == {
        **expected,
        "replayOf": "run-old",
        "triggeredAt": "2024-05-02T00:00:00Z",
    }
    assert "status" not in replay

    assert build_replay(old, "r", payload=[3], new_payload=True)["spec"]["payload"] == [3]
    assert "payload" not in build_replay(old, "r", payload=None, new_payload=True)["spec"]


def test_a_replay_request_tells_a_null_payload_from_none() -> None:
    assert not ReplayRequest().has_payload
    assert not ReplayRequest.model_validate({}).has_payload
    assert ReplayRequest.model_validate({"payload": None}).has_payload


def test_a_malformed_run_is_a_502_not_a_500() -> None:
    run = {"metadata": {"name": "run-bad"}, "spec": {"taskId": "x"}}
    with pytest.raises(ApiError) as refused:
        run_spec(run)
    assert (refused.value.status, refused.value.code) == (502, "invalid_run")
    assert {d["field"] for d in refused.value.details} >= {"version", "image", "queue"}


def test_an_unknown_phase_is_no_phase() -> None:
    assert run_phase({"status": {"phase": "Pondering"}}) is None
    assert run_phase({"status": {"phase": "Delayed"}}) is RunPhase.DELAYED
    assert run_phase({}) is None


@pytest.mark.parametrize("phase", [None, *RunPhase])
def test_only_a_delayed_run_may_be_rescheduled(phase: RunPhase | None) -> None:
    conflict = reschedule_conflict(_run(phase, delay=60))
    if phase is RunPhase.DELAYED:
        assert conflict is None
    else:
        assert conflict is not None
        assert (conflict.status, conflict.code) == (409, "run_not_delayed")
        assert (phase or "Pending") in conflict.message


def test_the_new_delay() -> None:
    def until(delay: Any) -> datetime:
        return rescheduled_until(RescheduleRequest.model_validate({"delay": delay}), NOW)

    assert until(90) == NOW + timedelta(seconds=90)
    assert until(0) == NOW
    assert until("2024-06-01T00:00:00Z") == datetime(2024, 6, 1, tzinfo=UTC)
    assert until("2024-06-01T00:00:00") == datetime(2024, 6, 1, tzinfo=UTC)  # naive is UTC
    assert until(60.0) == NOW + timedelta(seconds=60)
    with pytest.raises(ValueError, match="zero or more"):
        until(-1)


@pytest.mark.parametrize("model", [RescheduleRequest, TriggerOptions])
@pytest.mark.parametrize(
    ("delay", "problem"),
    [
        (1.5, "whole seconds"),  # else read as a Unix time in 1970: no delay at all
        (True, "whole seconds"),
        (10**20, "at most"),  # else an overflow, a 500
        (-5, "zero or more"),
    ],
)
def test_a_delay_is_whole_seconds_within_a_century_or_a_time(
    model: type[RescheduleRequest | TriggerOptions], delay: Any, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        model.model_validate({"delay": delay})


def test_the_run_view_shows_replay_cancel_and_conditions() -> None:
    run = _run()
    run["spec"]["replayOf"] = "run-first"
    run["spec"]["cancelRequestedAt"] = "2024-05-01T12:00:01+00:00"
    # Passed on as written, also what the model does not know (`observedGeneration`).
    condition = {
        "type": "Admitted",
        "status": "False",
        "reason": "QueuePaused",
        "lastTransitionTime": "2024-05-01T12:00:00Z",
        "observedGeneration": 2,
    }
    run["status"] = {"phase": "Queued", "conditions": [condition]}
    view = run_view(run)
    assert view["replayOf"] == "run-first"
    assert view["cancelRequestedAt"] == "2024-05-01T12:00:01Z"
    assert view["conditions"] == [condition]
    assert view["nextAttemptAt"] is None
    assert run_view(_run())["conditions"] == []
