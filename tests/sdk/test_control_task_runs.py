"""The one builder of a Task's run (`podtask._control.task_runs`), which the API's triggers
and the operator's schedule ticks share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from podtask._contract.resources import QueueRef, RetryPolicy, TaskSpec
from podtask._contract.trigger_request import WireTriggerOptions
from podtask._contract.wire import LABEL_QUEUE, LABEL_TASK, LABEL_TEST
from podtask._control.task_runs import delay_until, run_labels, run_spec, task_run_object

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TASK = TaskSpec(
    task_id="hello-world",
    image="registry.local/tasks:1",
    module="tasks.hello",
    version="20240501.1",
    retry=RetryPolicy(max_attempts=5),
    queue=QueueRef(name="greetings", concurrency_limit=2),
    machine="small-1x",
    max_duration_seconds=300,
    ttl_seconds=600,
)


def test_a_run_without_options_is_the_task_frozen_with_its_payload() -> None:
    spec = run_spec(TASK, {"n": 1}, now=NOW)
    assert (spec.task_id, spec.version, spec.image, spec.module) == (
        "hello-world",
        "20240501.1",
        "registry.local/tasks:1",
        "tasks.hello",
    )
    assert (spec.machine, spec.retry, spec.queue) == ("small-1x", TASK.retry, TASK.queue)
    assert (spec.max_duration_seconds, spec.ttl_seconds) == (300, 600)
    assert spec.payload == {"n": 1} and spec.triggered_at == NOW
    assert spec.tags == [] and spec.metadata == {} and spec.priority == 0
    assert spec.delay_until is None and spec.parent_run_id is None and not spec.is_test


def test_options_change_the_runs_copy_only() -> None:
    options = WireTriggerOptions(tags=["nightly"], max_attempts=1, machine="large-1x", delay=30)
    spec = run_spec(TASK, None, options, parent_run_id="run-p", now=NOW)
    assert spec.tags == ["nightly"] and spec.machine == "large-1x"
    assert spec.retry.max_attempts == 1 and TASK.retry.max_attempts == 5
    assert spec.delay_until == NOW + timedelta(seconds=30) and spec.parent_run_id == "run-p"


def test_delays() -> None:
    assert delay_until(None, NOW) is None and delay_until(0, NOW) is None
    assert delay_until(5, NOW) == NOW + timedelta(seconds=5)
    assert delay_until(datetime(2024, 5, 2), NOW) == datetime(2024, 5, 2, tzinfo=UTC)


def test_labels_and_the_object() -> None:
    assert run_labels(TASK, is_test=True) == {
        LABEL_TASK: "hello-world",
        LABEL_QUEUE: "greetings",
        LABEL_TEST: "true",
    }
    body = task_run_object({"name": "run-x"}, run_spec(TASK, 1, now=NOW))
    assert (body["apiVersion"], body["kind"]) == ("podtask.dev/v1alpha1", "TaskRun")
    assert body["spec"]["payload"] == 1 and body["spec"]["triggeredAt"] == "2024-05-01T12:00:00Z"


def test_queue_name_that_is_no_label_value_gets_no_label() -> None:
    task = TASK.model_copy(update={"queue": QueueRef(name="emails/high priority")})
    assert run_labels(task) == {LABEL_TASK: "hello-world"}
