"""Unit tests of the runner's pure parts: executing an attempt, output checks, the API client."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from declared_tasks import make_task
from runner_fixtures import played_callbacks

from podtask import Context, MachineContext
from podtask._contract.resources import CompletionReport
from podtask._contract.wire import (
    NON_RETRYABLE_ERRORS,
    OUTPUT_NOT_JSON_ERROR,
    OUTPUT_TOO_LARGE_ERROR,
    TASK_NOT_FOUND_ERROR,
)
from podtask.errors import PayloadValidationError, TaskModuleImportError
from podtask_runner.__main__ import RunnerEnvironment, RunnerEnvironmentError
from podtask_runner.attempt import (
    OutputNotSerializableError,
    OutputTooLargeError,
    Succeeded,
    TaskNotFoundError,
    context_from_wire,
    encode_output,
    execute_attempt,
)
from podtask_runner.callbacks import ApiCallError, AttemptCallbacks, CallRetry

CTX = Context(
    run_id="run-abc",
    attempt=1,
    task_id="t",
    queue="q",
    machine=MachineContext("micro", 0.25, 0.25),
    started_at=datetime(2024, 1, 1, tzinfo=UTC),
)


def test_sync_run_outcome() -> None:
    outcome = execute_attempt(make_task(lambda p, ctx: {"got": p, "run": ctx.run_id}), 5, CTX)
    assert outcome == Succeeded({"got": 5, "run": "run-abc"})


@pytest.mark.parametrize("output", [None, 0, "", "text", [1, "a"], {"a": {"b": [None, 1.5]}}])
def test_a_report_of_success_is_the_wire_models(output: Any) -> None:
    """The runner sends `Succeeded` without the models; the API reads it as the model."""
    wire = Succeeded(output).to_wire()
    assert wire == CompletionReport(ok=True, output=output).to_wire()
    assert CompletionReport.model_validate(wire) == CompletionReport(ok=True, output=output)


def test_async_run_outcome() -> None:
    async def run(payload: Any, ctx: Context) -> list[int]:
        await asyncio.sleep(0)
        return [payload, payload]

    assert execute_attempt(make_task(run), 2, CTX).output == [2, 2]


def test_error_outcome_has_type_message_and_stack() -> None:
    def run(payload: Any, ctx: Context) -> None:
        raise KeyError("missing")

    outcome = execute_attempt(make_task(run), None, CTX)
    assert not outcome.ok and outcome.error is not None
    assert outcome.error.type == "KeyError"
    assert outcome.error.message == "'missing'"
    assert outcome.error.stack is not None and "raise KeyError" in outcome.error.stack


def test_sys_exit_in_a_task_is_a_failure_not_an_exit() -> None:
    def run(payload: Any, ctx: Context) -> None:
        raise SystemExit(3)

    outcome = execute_attempt(make_task(run), None, CTX)
    assert outcome.error is not None and outcome.error.type == "SystemExit"
    assert outcome.error.message == "the task called sys.exit(3)"


def test_a_task_timeout_error_is_not_mistaken_for_max_duration() -> None:
    async def run(payload: Any, ctx: Context) -> None:
        raise TimeoutError("upstream slow")

    outcome = execute_attempt(make_task(run), None, CTX, max_duration_seconds=5)
    assert outcome.error is not None and outcome.error.type == "TimeoutError"


def test_encode_output_refuses_non_json() -> None:
    with pytest.raises(OutputNotSerializableError, match="output of task 'x' is not JSON"):
        encode_output("x", {"a": {1, 2}})
    with pytest.raises(OutputNotSerializableError, match="output: the number is not finite"):
        encode_output("x", float("nan"))


def test_encode_output_limits_size_in_utf8_bytes() -> None:
    # 200 Ki three-byte characters are 600 KiB of UTF-8.
    with pytest.raises(OutputTooLargeError, match=r"is 614402 bytes .* limit of 524288 bytes"):
        encode_output("x", "€" * (200 * 1024))
    assert json.loads(encode_output("x", "a" * 1000)) == "a" * 1000


def test_context_from_wire() -> None:
    ctx = context_from_wire(
        {
            "runId": "run-1",
            "attempt": 2,
            "taskId": "t",
            "queue": "q",
            "machine": {"name": "medium-1x", "cpu": 1, "memoryGb": 2},
            "startedAt": "2024-05-01T10:00:00Z",
            "tags": ["a"],
            "metadata": {"k": 1},
            "concurrencyKey": "user-1",
            "idempotencyKey": None,
            "parentRunId": None,
            "isTest": True,
        }
    )
    assert ctx.machine == MachineContext("medium-1x", 1.0, 2.0)
    assert ctx.started_at == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert (ctx.attempt, ctx.concurrency_key, ctx.is_test, ctx.tags) == (2, "user-1", True, ["a"])


def test_runner_environment() -> None:
    env = {
        "PODTASK_API_URL": "http://api",
        "PODTASK_RUN_ID": "run-1",
        "PODTASK_ATTEMPT": "3",
        "PODTASK_ATTEMPT_TOKEN": "tok",
    }
    assert RunnerEnvironment.from_env(env).attempt == 3
    with pytest.raises(RunnerEnvironmentError, match="whole number"):
        RunnerEnvironment.from_env({**env, "PODTASK_ATTEMPT": "x"})
    with pytest.raises(RunnerEnvironmentError, match="PODTASK_RUN_ID"):
        RunnerEnvironment.from_env({k: v for k, v in env.items() if k != "PODTASK_RUN_ID"})
    # An address the runner cannot call is a bad environment (exit 2), not a crash.
    for url in ("api:8080", "ftp://api", "http://api:port"):
        with pytest.raises(RunnerEnvironmentError, match="PODTASK_API_URL"):
            RunnerEnvironment.from_env({**env, "PODTASK_API_URL": url})


def test_call_retry_delays_grow_and_cap() -> None:
    assert CallRetry(attempts=5, first_delay=1, factor=2, max_delay=3).delays() == [1, 2, 3, 3]


def _callbacks(answers: list[httpx.Response], seen: list[httpx.Request]) -> AttemptCallbacks:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    return played_callbacks(handle)


def _error(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": "m", "details": None}})


def test_callbacks_retry_5xx_and_not_started_then_succeed() -> None:
    seen: list[httpx.Request] = []
    callbacks = _callbacks(
        [
            _error(503, "cluster_unavailable"),
            _error(409, "attempt_not_started"),
            httpx.Response(200, json={"taskId": "t"}),
        ],
        seen,
    )
    assert callbacks.fetch_attempt() == {"taskId": "t"}
    assert len(seen) == 3
    assert seen[0].url.path == "/api/v1/runner/runs/run-1/attempts/1"
    assert seen[0].headers["Authorization"] == "Bearer tok"


def test_callbacks_do_not_retry_a_refusal() -> None:
    seen: list[httpx.Request] = []
    callbacks = _callbacks([_error(403, "forbidden")], seen)
    with pytest.raises(ApiCallError, match="HTTP 403 forbidden"):
        callbacks.fetch_attempt()
    assert len(seen) == 1


def test_callbacks_give_up_after_the_last_try() -> None:
    seen: list[httpx.Request] = []
    callbacks = _callbacks([_error(502, "x")] * 4, seen)
    with pytest.raises(ApiCallError, match="HTTP 502"):
        callbacks.report(CompletionReport(ok=True, output=1))
    assert len(seen) == 4
    assert json.loads(seen[0].content) == {"ok": True, "output": 1, "error": None}
    assert seen[0].url.path.endswith("/attempts/1/complete")


def test_the_traceback_shows_the_authors_frames_not_the_runners() -> None:
    async def fetch(payload: Any) -> None:
        raise ConnectionError("upstream down")

    async def run(payload: Any, ctx: Context) -> None:
        await fetch(payload)

    outcome = execute_attempt(make_task(run), None, CTX)
    assert outcome.error is not None and outcome.error.stack is not None
    stack = outcome.error.stack
    assert "in run" in stack and "in fetch" in stack
    assert "podtask_runner" not in stack and "asyncio" not in stack
    # An error raised by the runner itself keeps its frames: they are all there is.
    not_json = execute_attempt(make_task(lambda payload, ctx: {1}), None, CTX)
    assert not_json.error is not None and "in encode_output" in (not_json.error.stack or "")


def test_a_hurried_report_tries_twice_only() -> None:
    seen: list[httpx.Request] = []
    callbacks = _callbacks([_error(503, "x")] * 4, seen)
    with pytest.raises(ApiCallError, match="HTTP 503"):
        callbacks.report(CompletionReport(ok=False), hurried=True)
    assert len(seen) == 2
    assert seen[0].extensions["timeout"]["read"] == 3.0


def test_calls_wait_about_a_minute_for_a_restarting_api() -> None:
    assert 55 <= sum(CallRetry().delays()) <= 90


def test_the_runner_reports_its_errors_by_the_names_the_operator_judges() -> None:
    # The operator reads `RunError.type` by these names (podtask._contract.wire).
    assert TaskNotFoundError.__name__ == TASK_NOT_FOUND_ERROR
    assert OutputNotSerializableError.__name__ == OUTPUT_NOT_JSON_ERROR
    assert OutputTooLargeError.__name__ == OUTPUT_TOO_LARGE_ERROR
    assert TaskModuleImportError.__name__ in NON_RETRYABLE_ERRORS
    assert PayloadValidationError.__name__ in NON_RETRYABLE_ERRORS
    assert {TASK_NOT_FOUND_ERROR, OUTPUT_NOT_JSON_ERROR, OUTPUT_TOO_LARGE_ERROR} <= (
        NON_RETRYABLE_ERRORS
    )
