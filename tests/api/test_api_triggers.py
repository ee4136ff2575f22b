"""Unit tests of turning a trigger into a TaskRun, and of the run views."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_fixtures import HELLO
from pydantic import ValidationError

from podtask._contract.resources import TaskRunSpec, TaskRunStatus
from podtask._contract.retry import next_attempt_machine
from podtask._contract.wire import LABEL_QUEUE, LABEL_TASK
from podtask_api.batch_triggers import BatchTriggerItem, check_batch_payloads, plan_batch
from podtask_api.errors import ApiError
from podtask_api.live_attempts import attempt_refusal, is_report_resent
from podtask_api.run_names import idempotent_run_name, random_run_name
from podtask_api.run_views import attempt_machine, attempt_view, run_view
from podtask_api.stored_json import check_payload_size
from podtask_api.task_runs import build_task_run
from podtask_api.trigger_requests import TriggerOptions, TriggerRequest
from podtask_operator.lifecycle import start_attempt

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def trigger(payload: Any = None, **options: Any) -> TriggerRequest:
    return TriggerRequest.model_validate({"payload": payload, "options": options})


def test_task_run_is_a_snapshot_of_the_task_with_defaults() -> None:
    body = build_task_run(HELLO, trigger({"name": "Ada"}), "run-abc", now=NOW)
    assert body["apiVersion"] == "podtask.dev/v1alpha1"
    assert body["kind"] == "TaskRun"
    assert body["metadata"] == {
        "name": "run-abc",
        "labels": {LABEL_TASK: "hello-world", LABEL_QUEUE: "greetings"},
    }
    assert body["spec"] == {
        "taskId": "hello-world",
        "version": "20240501.1",
        "image": "registry.local/tasks:1",
        "module": "tasks.hello",
        "machine": "small-1x",
        "retry": {
            "maxAttempts": 5,
            "factor": 2.0,
            "minTimeoutMs": 1000,
            "maxTimeoutMs": 60000,
            "randomize": True,
        },
        "queue": {"name": "greetings", "concurrencyLimit": 2},
        "maxDurationSeconds": 300,
        "payload": {"name": "Ada"},
        "priority": 0,
        "tags": [],
        "metadata": {},
        "isTest": False,
        "triggeredAt": "2024-05-01T12:00:00Z",
    }


def test_options_override_and_extend_the_snapshot() -> None:
    request = trigger(
        [1, None],
        tags=["a", "b"],
        metadata={"user": 7},
        priority=10,
        concurrencyKey="user-7",
        machine="large-1x",
        maxDuration=60,
        idempotencyKey="order-1",
        ttl=3600,
        delay=30,
    )
    spec = build_task_run(HELLO, request, "run-x", now=NOW)["spec"]
    assert spec["payload"] == [1, None]
    assert spec["tags"] == ["a", "b"]
    assert spec["metadata"] == {"user": 7}
    assert spec["priority"] == 10
    assert spec["concurrencyKey"] == "user-7"
    assert spec["machine"] == "large-1x"
    assert spec["maxDurationSeconds"] == 60
    assert spec["idempotencyKey"] == "order-1"
    assert spec["ttlSeconds"] == 3600
    assert spec["delayUntil"] == "2024-05-01T12:00:30Z"


def test_max_attempts_and_the_parent_run() -> None:
    request = trigger(maxAttempts=1)
    spec = build_task_run(HELLO, request, "run-x", parent_run_id="run-parent", now=NOW)["spec"]
    assert spec["retry"]["maxAttempts"] == 1
    assert spec["retry"]["minTimeoutMs"] == HELLO.retry.min_timeout_ms
    assert spec["parentRunId"] == "run-parent"
    assert HELLO.retry.max_attempts == 5
    with pytest.raises(ValidationError):
        TriggerOptions.model_validate({"maxAttempts": 0})


def batch_item(task: str = "hello-world", payload: Any = None, **options: Any) -> BatchTriggerItem:
    return BatchTriggerItem.model_validate({"task": task, "payload": payload, "options": options})


def test_batch_plan_keeps_item_order_and_shares_repeated_keys() -> None:
    items = [
        batch_item(payload=0),
        batch_item(payload=1, idempotencyKey="k"),
        batch_item(payload=2),
        batch_item(payload=3, idempotencyKey="k"),
    ]
    plan = plan_batch(items, {"hello-world": HELLO}, parent_run_id="run-p", now=NOW)
    assert [run.index for run in plan.runs] == [0, 1, 2]
    assert plan.run_of_item == [0, 1, 2, 1]
    assert [plan.is_repeat(i) for i in range(4)] == [False, False, False, True]
    assert plan.runs[1].name == idempotent_run_name("hello-world", "k", 1)
    assert {run.body["spec"]["parentRunId"] for run in plan.runs} == {"run-p"}
    assert [run.body["spec"]["payload"] for run in plan.runs] == [0, 1, 2]


def test_batch_payload_checks_name_each_item() -> None:
    check_batch_payloads([batch_item(payload="ok")])
    too_large = "x" * (512 * 1024)
    items = [batch_item(payload=too_large), batch_item(), batch_item(payload=too_large)]
    with pytest.raises(ApiError) as refused:
        check_batch_payloads(items)
    assert refused.value.status == 413
    assert refused.value.message.startswith("item 0: the payload is 524290 bytes")
    assert "(and 1 more item)" in refused.value.message
    assert [d["item"] for d in refused.value.details] == [0, 2]
    with pytest.raises(ApiError) as invalid:
        check_batch_payloads([batch_item(), batch_item(payload=float("nan"))])
    assert (invalid.value.status, invalid.value.details[0]["field"]) == (422, "items.1.payload")


def test_delay_as_a_time() -> None:
    when = NOW + timedelta(hours=1)
    spec = build_task_run(HELLO, trigger(delay=when.isoformat()), "run-x", now=NOW)["spec"]
    assert spec["delayUntil"] == "2024-05-01T13:00:00Z"


def test_unknown_option_and_bad_machine_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        trigger(colour="red")
    with pytest.raises(ValidationError, match="valid machines are: micro, small-1x"):
        TriggerOptions.model_validate({"machine": "huge"})
    with pytest.raises(ValidationError):
        TriggerOptions.model_validate({"ttl": 0})


def test_run_names() -> None:
    assert re.fullmatch(r"run-[0-9][a-z0-9]{16}", random_run_name())
    assert random_run_name() != random_run_name()
    key = idempotent_run_name("hello-world", "order-1", 1)
    assert re.fullmatch(r"run-k[0-9a-f]{16}-1", key)
    assert key == idempotent_run_name("hello-world", "order-1", 1)
    assert key != idempotent_run_name("hello-world", "order-2", 1)
    assert key != idempotent_run_name("other-task", "order-1", 1)
    assert idempotent_run_name("hello-world", "order-1", 2) == key[:-1] + "2"


def test_fresh_run_names_sort_newest_first_and_before_keyed_ones() -> None:
    times = [NOW + timedelta(milliseconds=n) for n in (0, 1, 999, 86_400_000)]
    names = [random_run_name(when) for when in times]
    assert sorted(names) == list(reversed(names))
    # Far into the future still a digit first, so keyed runs (`run-k…`) sort after them all.
    late = random_run_name(datetime(2800, 1, 1, tzinfo=UTC))
    assert late[4].isdigit() and max([*names, late]) < idempotent_run_name("t", "k", 1)


def test_payload_size_limit() -> None:
    check_payload_size("x" * 100, limit=102)
    with pytest.raises(ApiError) as too_large:
        check_payload_size("x" * 101, limit=102)
    assert too_large.value.status == 413
    assert too_large.value.details == {"size": 103, "limit": 102}
    with pytest.raises(ApiError) as nan:
        check_payload_size({"x": float("nan")})
    assert nan.value.status == 422


def _run(status: dict[str, Any] | None = None) -> dict[str, Any]:
    body = build_task_run(HELLO, trigger({"a": 1}, tags=["t"]), "run-abc", now=NOW)
    body["metadata"]["creationTimestamp"] = "2024-05-01T12:00:00Z"
    if status is not None:
        body["status"] = status
    return body


def test_run_view_of_a_new_run_is_pending() -> None:
    view = run_view(_run())
    assert view["id"] == "run-abc"
    assert view["taskId"] == "hello-world"
    assert view["status"] == "Pending"
    assert view["attempt"] == 0
    assert view["attempts"] == []
    assert view["payload"] == {"a": 1}
    assert view["output"] is None and view["error"] is None
    assert view["tags"] == ["t"]
    assert view["queue"] == "greetings"
    assert view["machine"] == "small-1x"
    assert view["createdAt"] == "2024-05-01T12:00:00Z"
    assert view["startedAt"] is None and view["finishedAt"] is None


def test_run_view_of_a_finished_run() -> None:
    view = run_view(
        _run(
            {
                "phase": "Failed",
                "attempt": 2,
                "machine": "medium-1x",
                "attempts": [{"number": 1, "pod": "run-abc-1", "machine": "small-1x"}],
                "error": {"type": "ValueError", "message": "bad"},
                "startedAt": "2024-05-01T12:00:01Z",
                "finishedAt": "2024-05-01T12:00:03.5Z",
                "duration": "2.5s",
            }
        )
    )
    assert view["status"] == "Failed"
    assert view["machine"] == "medium-1x"
    assert view["attempts"] == [{"number": 1, "pod": "run-abc-1", "machine": "small-1x"}]
    assert view["error"] == {"type": "ValueError", "message": "bad"}
    assert view["startedAt"] == "2024-05-01T12:00:01Z"
    assert view["durationMs"] == 2500
    assert view["duration"] == "2.5s"


def test_an_attempt_token_counts_while_its_attempt_executes() -> None:
    report = {"attempt": 2, "ok": True, "output": 1, "reportedAt": "2024-05-01T12:00:01Z"}
    for status, attempt in [
        ({"phase": "Executing", "attempt": 2}, 2),
        # The operator creates attempt N's pod before it records N: a token for N is proof.
        ({"phase": "WaitingToRetry", "attempt": 1}, 2),
        ({"phase": "Queued", "attempt": 1}, 2),
        ({"phase": "Executing", "attempt": 1}, 2),
        ({}, 1),
        ({"phase": "Queued"}, 1),
        # The report of an earlier attempt does not end this one.
        ({"phase": "Executing", "attempt": 3, "report": report}, 3),
    ]:
        assert attempt_refusal(_run(status), attempt) is None, (status, attempt)
    for status, attempt, code in [
        ({"phase": "Executing", "attempt": 3}, 2, "attempt_ended"),
        ({"phase": "WaitingToRetry", "attempt": 3}, 1, "attempt_ended"),
        ({"phase": "WaitingToRetry", "attempt": 2}, 2, "attempt_ended"),
        ({"phase": "Queued", "attempt": 2}, 2, "attempt_ended"),
        ({"phase": "Executing", "attempt": 2, "report": report}, 2, "attempt_ended"),
        ({"phase": "WaitingToRetry", "attempt": 1, "report": report}, 2, "attempt_ended"),
        ({"phase": "Canceled", "attempt": 2}, 2, "attempt_ended"),
        ({"phase": "Failed", "attempt": 2}, 3, "attempt_ended"),
        ({"phase": "Completed", "attempt": 1}, 1, "attempt_ended"),
        ({"phase": "Queued", "attempt": 1}, 3, "attempt_not_started"),
        ({}, 2, "attempt_not_started"),
    ]:
        refusal = attempt_refusal(_run(status), attempt)
        assert refusal is not None, (status, attempt)
        expected = 409 if code == "attempt_not_started" else 401
        assert (refusal.status, refusal.code) == (expected, code), (status, attempt)


def test_a_report_is_resent_when_its_outcome_is_the_one_accepted() -> None:
    accepted = {"attempt": 2, "ok": True, "output": {"a": [1]}, "error": None}
    run = _run({"phase": "Completed", "attempt": 2, "report": accepted})
    assert is_report_resent(run, {**accepted, "reportedAt": "2024-05-01T12:00:09Z"})
    assert not is_report_resent(run, {**accepted, "output": {"a": [2]}})
    assert not is_report_resent(run, {**accepted, "attempt": 3})
    assert not is_report_resent(_run({"phase": "Executing", "attempt": 2}), accepted)


def test_a_report_is_resent_after_the_operator_moved_its_output() -> None:
    """A completed run holds the output once, in `status.output`; the same report is still
    recognised as the one accepted, and another output still is not."""
    accepted = {"attempt": 2, "ok": True, "output": {"a": [1]}, "error": None}
    moved = {k: v for k, v in accepted.items() if k != "output"}
    run = _run({"phase": "Completed", "attempt": 2, "report": moved, "output": {"a": [1]}})
    assert is_report_resent(run, accepted)
    assert not is_report_resent(run, {**accepted, "output": {"a": [2]}})


def _oom_run(status: dict[str, Any], out_of_memory_machine: str | None = "large-1x") -> Any:
    run = _run(status)
    run["spec"]["retry"]["outOfMemory"] = {"machine": out_of_memory_machine}
    return run


def test_attempt_machine_before_the_operator_records_the_attempt() -> None:
    after_oom = {
        "phase": "WaitingToRetry",
        "attempt": 1,
        "machine": "medium-1x",
        "attempts": [
            {"number": 1, "pod": "run-abc-1", "machine": "medium-1x", "reason": "OOMKilled"}
        ],
    }
    after_error = {
        **after_oom,
        "attempts": [{"number": 1, "pod": "run-abc-1", "machine": "medium-1x", "reason": "Error"}],
    }
    cases = [
        # No status yet: attempt 1 runs on the spec's machine.
        (_run(), 1, "small-1x"),
        # Attempt 2 runs where the operator put it: the OOM machine, else the run's machine.
        (_oom_run(after_oom), 2, "large-1x"),
        (_oom_run(after_error), 2, "medium-1x"),
        (_oom_run(after_oom, None), 2, "medium-1x"),
        (_run(after_oom), 2, "medium-1x"),
        # Attempt 1 itself is recorded: its own entry wins.
        (_oom_run(after_oom), 1, "medium-1x"),
    ]
    for run, attempt, machine in cases:
        view = attempt_view(run, attempt, now=NOW)
        assert view["attempt"] == attempt and view["context"]["attempt"] == attempt
        assert view["context"]["machine"]["name"] == machine, (run.get("status"), attempt)
        if attempt == 2:
            assert view["context"]["startedAt"] == "2024-05-01T12:00:00Z"


def test_attempt_machine_follows_the_operators_rule() -> None:
    status = TaskRunStatus.model_validate(
        {
            "attempt": 1,
            "machine": "small-1x",
            "attempts": [{"number": 1, "pod": "p", "machine": "small-1x", "reason": "OOMKilled"}],
        }
    )
    spec = TaskRunSpec.model_validate(_oom_run({})["spec"])
    assert attempt_machine(spec, status, 2) == next_attempt_machine(spec, status) == "large-1x"
    recorded = start_attempt("run-abc", spec, status, NOW)
    assert attempt_machine(spec, recorded, 2) == recorded.machine == "large-1x"


def test_attempt_view_has_what_context_needs() -> None:
    run = _run(
        {
            "phase": "Executing",
            "attempt": 2,
            "attempts": [
                {"number": 1, "pod": "run-abc-1", "machine": "small-1x"},
                {
                    "number": 2,
                    "pod": "run-abc-2",
                    "machine": "medium-2x",
                    "startedAt": "2024-05-01T12:01:00Z",
                },
            ],
        }
    )
    view = attempt_view(run, 2)
    assert view == {
        "runId": "run-abc",
        "attempt": 2,
        "taskId": "hello-world",
        "module": "tasks.hello",
        "payload": {"a": 1},
        "maxDurationSeconds": 300,
        "context": {
            "runId": "run-abc",
            "attempt": 2,
            "taskId": "hello-world",
            "queue": "greetings",
            "machine": {"name": "medium-2x", "cpu": 2, "memoryGb": 4},
            "startedAt": "2024-05-01T12:01:00Z",
            "tags": ["t"],
            "metadata": {},
            "concurrencyKey": None,
            "idempotencyKey": None,
            "parentRunId": None,
            "isTest": False,
        },
    }
