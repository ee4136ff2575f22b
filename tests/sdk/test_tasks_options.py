"""Every `@task` option: what it accepts, and errors that name the task and the option."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel

from podtask import PRESETS, Context, QueueRef, RetryPolicy, TaskDeclarationError, queue, task
from podtask._authoring.tasks import Task, payload_model_of
from podtask._contract.machines import MachinePreset
from podtask._contract.resources import TaskScheduleDeclaration
from podtask.hooks import AttemptResult, TaskHooks

if TYPE_CHECKING:
    from collections.abc import Sequence  # only for type checkers: never resolvable at run time


def run(payload: Any, ctx: Context) -> Any:
    return payload


def declaration_error(task_id: str, **options: Any) -> str:
    with pytest.raises(TaskDeclarationError) as caught:
        task(id=task_id, **options)(run)
    message = str(caught.value)
    assert f"task {task_id!r}" in message
    return message


# --- retry ---------------------------------------------------------------------------------


def test_retry_as_a_model_or_a_dict() -> None:
    as_model = task(id="opt-retry-model", retry=RetryPolicy(max_attempts=5))(run)
    as_dict = task(id="opt-retry-dict", retry={"max_attempts": 5, "factor": 1.5})(run)
    camel = task(id="opt-retry-camel", retry={"maxAttempts": 2, "outOfMemory": {}})(run)
    assert as_model.retry.max_attempts == 5
    assert (as_dict.retry.max_attempts, as_dict.retry.factor) == (5, 1.5)
    assert as_dict.retry.min_timeout_ms == 1000  # the rest keeps Trigger.dev's defaults
    assert camel.retry.max_attempts == 2
    oom = task(id="opt-retry-oom", retry={"out_of_memory": {"machine": "large-1x"}})(run)
    assert oom.retry.out_of_memory is not None
    assert oom.retry.out_of_memory.machine == "large-1x"


@pytest.mark.parametrize(
    ("retry", "expected"),
    [
        ({"max_attempts": 0}, r"invalid retry: max_attempts: .*greater than or equal to 1"),
        ({"factor": 0.5}, r"invalid retry: factor"),
        ({"min_timeout_ms": -1}, r"invalid retry: min_timeout_ms"),
        ({"randomize": "sometimes"}, r"invalid retry: randomize"),
        (
            {"out_of_memory": {"machine": "giant"}},
            r"retry: out_of_memory.machine: unknown machine 'giant'; valid machines are: micro",
        ),
        (5, r"retry must be a RetryPolicy or a dict, got int 5"),
    ],
)
def test_invalid_retry(retry: Any, expected: str) -> None:
    assert re.search(expected, declaration_error("opt-bad-retry", retry=retry))


# --- queue ---------------------------------------------------------------------------------


def test_queue_inline_shared_or_default() -> None:
    emails = queue("emails", concurrency_limit=2)
    first = task(id="opt-queue-a", queue=emails)(run)
    second = task(id="opt-queue-b", queue=emails)(run)
    inline = task(id="opt-queue-inline", queue={"concurrency_limit": 1})(run)
    named = task(id="opt-queue-named", queue={"name": "reports", "concurrencyLimit": 3})(run)
    model = task(id="opt-queue-model", queue=QueueRef(name="m"))(run)
    default = task(id="opt-queue-default")(run)
    assert first.queue is second.queue is emails
    assert inline.queue == QueueRef(name="opt-queue-inline", concurrency_limit=1)
    assert named.queue == QueueRef(name="reports", concurrency_limit=3)
    assert model.queue.name == "m"
    assert default.queue == QueueRef(name="opt-queue-default")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"concurrency_limit": -1}, r"invalid queue: concurrency_limit: .*greater than or equal"),
        ({"name": ""}, r"invalid queue: name must not be empty"),
        ({"name": 7}, r"invalid queue: name: Input should be a valid string"),
        ("emails", r"queue must be a QueueRef or a dict, got str 'emails'"),
    ],
)
def test_invalid_queue(value: Any, expected: str) -> None:
    assert re.search(expected, declaration_error("opt-bad-queue", queue=value))


def test_invalid_shared_queue() -> None:
    with pytest.raises(TaskDeclarationError, match=r"queue 'q' is invalid: .*greater than"):
        queue("q", concurrency_limit=-1)
    with pytest.raises(TaskDeclarationError, match="queue name must be a non-empty string"):
        queue("")


# --- machine -------------------------------------------------------------------------------


def test_machine_by_name_or_preset() -> None:
    assert task(id="opt-machine-name", machine="large-2x")(run).machine == "large-2x"
    assert task(id="opt-machine-preset", machine=PRESETS["medium-1x"])(run).machine == "medium-1x"


@pytest.mark.parametrize(
    "machine", ["giant", "Large-1x", "", {"cpu": 2}, MachinePreset("custom", 3, 3)]
)
def test_unknown_machine_lists_the_valid_ones(machine: Any) -> None:
    message = declaration_error("opt-bad-machine", machine=machine)
    assert "valid machines are: micro, small-1x, small-2x, medium-1x" in message


# --- max_duration and ttl ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["max_duration", "ttl"])
def test_durations_in_seconds_or_timedelta(name: str) -> None:
    seconds = task(id=f"opt-{name.replace('_', '-')}-int", **{name: 90})(run)
    delta = task(id=f"opt-{name.replace('_', '-')}-delta", **{name: timedelta(minutes=5)})(run)
    field = f"{name}_seconds" if name == "ttl" else "max_duration_seconds"
    assert getattr(seconds, field) == 90
    assert getattr(delta, field) == 300


@pytest.mark.parametrize("name", ["max_duration", "ttl"])
@pytest.mark.parametrize(
    "value", [0, -5, 1.5, True, "60", timedelta(milliseconds=500), timedelta(seconds=1.5)]
)
def test_invalid_durations(name: str, value: Any) -> None:
    message = declaration_error("opt-bad-duration", **{name: value})
    assert f"{name} must be a whole number of seconds" in message
    assert repr(value) in message


# --- schedule ------------------------------------------------------------------------------


def test_schedule_as_a_cron_expression_or_a_dict_with_a_zone() -> None:
    assert task(id="opt-schedule-none")(run).schedule is None
    utc = task(id="opt-schedule-text", schedule="0  9 * * 1-5")(run).schedule
    assert utc == TaskScheduleDeclaration(cron="0 9 * * 1-5", timezone="UTC")
    paris = task(id="opt-schedule-dict", schedule={"cron": "@daily", "timezone": "Europe/Paris"})(
        run
    ).schedule
    assert paris == TaskScheduleDeclaration(cron="@daily", timezone="Europe/Paris")
    only_cron = task(id="opt-schedule-cron", schedule={"cron": "*/5 * * * *"})(run).schedule
    assert only_cron is not None and only_cron.timezone == "UTC"


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("0 9 * *", r"schedule cron: invalid cron expression '0 9 \* \*' \(4 fields\)"),
        ("0 0 9 * * 1-5", r"schedule cron: invalid cron expression '0 0 9 \* \* 1-5'"),
        ({"cron": "61 * * * *"}, r"schedule cron: invalid cron expression '61 \* \* \* \*'"),
        (
            {"cron": "@daily", "timezone": "Europe/Pariss"},
            r"schedule timezone: unknown timezone 'Europe/Pariss'",
        ),
        ({"cron": "@daily", "timezone": "paris"}, r"schedule timezone: unknown timezone 'paris'"),
        ({"cron": "@daily", "tz": "UTC"}, r"schedule .* has unknown keys 'tz'"),
        ({"timezone": "UTC"}, r"schedule .* has no 'cron'"),
        (5, r"schedule must be a cron expression or a dict .* got int 5"),
        ({"cron": 5}, r"schedule cron: invalid cron expression 5 \(int, not text\)"),
    ],
)
def test_invalid_schedules_name_the_task_the_field_and_the_value(
    schedule: Any, expected: str
) -> None:
    message = declaration_error("opt-bad-schedule", schedule=schedule)
    assert re.search(expected, message), message


# --- id ------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_id", ["Upper", "under_score", "-dash", "dash-", "", "x" * 64, 5])
def test_invalid_ids(task_id: Any) -> None:
    with pytest.raises(TaskDeclarationError, match=re.escape(f"task id {task_id!r} is invalid")):
        task(id=task_id)


# --- run -----------------------------------------------------------------------------------


def test_run_must_take_payload_and_ctx() -> None:
    def no_ctx(payload: Any) -> None: ...

    with pytest.raises(
        TaskDeclarationError,
        match=re.escape("task 'opt-bad-run': run must take (payload, ctx); no_ctx(payload) does"),
    ):
        task(id="opt-bad-run")(no_ctx)  # type: ignore[arg-type]
    with pytest.raises(TaskDeclarationError, match="run must be a function taking"):
        task(id="opt-bad-run")("not a function")  # type: ignore[arg-type]


def test_run_with_extra_defaults_or_varargs_is_fine() -> None:
    def flexible(payload: Any, ctx: Context, *rest: Any, verbose: bool = False) -> None: ...

    assert task(id="opt-flexible-run")(flexible).run is flexible


# --- hooks ---------------------------------------------------------------------------------


def on_start(payload: Any, ctx: Context) -> None: ...


def init(payload: Any, ctx: Context) -> dict[str, Any]:
    return {}


def middleware(payload: Any, ctx: Context, next: Callable[[], Any]) -> Any:
    return next()


def on_success(payload: Any, output: Any, ctx: Context) -> None: ...


def on_error(payload: Any, error: BaseException, ctx: Context) -> None: ...


def on_complete(payload: Any, result: AttemptResult, ctx: Context) -> None: ...


def cleanup(payload: Any, ctx: Context) -> None: ...


async def async_init(payload: Any, ctx: Context) -> None: ...


async def async_middleware(payload: Any, ctx: Context, next: Callable[[], Awaitable[Any]]) -> Any:
    return await next()


def test_every_hook_is_kept_on_the_task() -> None:
    declared = task(
        id="opt-hooks",
        init=init,
        cleanup=cleanup,
        middleware=middleware,
        on_start=on_start,
        on_success=on_success,
        on_error=on_error,
        on_complete=on_complete,
    )(run)
    assert declared.hooks == TaskHooks(
        init=(init,),
        middleware=(middleware,),
        on_start=(on_start,),
        on_success=(on_success,),
        on_error=(on_error,),
        on_complete=(on_complete,),
        cleanup=(cleanup,),
    )


def test_async_hooks_a_middleware_list_and_on_failure() -> None:
    declared = task(
        id="opt-hooks-async",
        init=async_init,
        middleware=[async_middleware, middleware],
        on_failure=on_error,
    )(run)
    assert declared.hooks.init == (async_init,)
    assert declared.hooks.middleware == (async_middleware, middleware)
    assert declared.hooks.on_error == (on_error,)  # on_failure is on_error


def test_no_hooks_by_default() -> None:
    assert not task(id="opt-no-hooks")(run).hooks


def test_on_error_and_on_failure_together_is_an_error() -> None:
    message = declaration_error("opt-both-errors", on_error=on_error, on_failure=on_error)
    assert "on_failure is another name for on_error; give one of them, not both" in message


HOOKS: dict[str, Any] = {
    "init": init,
    "cleanup": cleanup,
    "middleware": middleware,
    "on_start": on_start,
    "on_success": on_success,
    "on_error": on_error,
    "on_failure": on_error,
    "on_complete": on_complete,
}
PARAMETERS = {
    "init": "(payload, ctx)",
    "cleanup": "(payload, ctx)",
    "middleware": "(payload, ctx, next)",
    "on_start": "(payload, ctx)",
    "on_success": "(payload, output, ctx)",
    "on_error": "(payload, error, ctx)",
    "on_failure": "(payload, error, ctx)",
    "on_complete": "(payload, result, ctx)",
}


@pytest.mark.parametrize("option", sorted(HOOKS))
def test_a_hook_that_is_not_callable(option: str) -> None:
    message = declaration_error("opt-bad-hook", **{option: "notify"})
    assert f"{option} must be a function taking {PARAMETERS[option]}, got str 'notify'" in message


@pytest.mark.parametrize("option", sorted(HOOKS))
def test_a_hook_with_the_wrong_parameters(option: str) -> None:
    def wrong(payload: Any, *, ctx: Context) -> None: ...

    message = declaration_error("opt-bad-hook", **{option: wrong})
    assert f"{option} must take {PARAMETERS[option]}; " in message
    assert message.endswith("wrong(payload, *, ctx) does not")


def test_a_middleware_that_does_not_take_next() -> None:
    def timing(payload: Any, ctx: Context) -> Any: ...

    message = declaration_error("opt-bad-middleware", middleware=timing)
    assert "middleware must take (payload, ctx, next); " in message
    assert message.endswith("timing(payload, ctx) does not")


def test_a_bad_middleware_in_a_list_is_named_by_its_place() -> None:
    message = declaration_error("opt-bad-middleware-list", middleware=[middleware, cleanup])
    assert "middleware[1] must take (payload, ctx, next); cleanup(" in message


def test_callable_objects_and_builtins_are_accepted_as_hooks() -> None:
    class Notifier:
        def __call__(self, payload: Any, output: Any, ctx: Context) -> None: ...

    notifier = Notifier()
    declared = task(id="opt-callable-hook", on_success=notifier, cleanup=print)(run)
    assert declared.hooks.on_success == (notifier,)
    assert declared.hooks.cleanup == (print,)


# --- payload model -------------------------------------------------------------------------


class Signup(BaseModel):
    email: str


def test_the_payload_model_comes_from_the_annotation() -> None:
    def with_model(payload: Signup, ctx: Context) -> None: ...

    def with_dict(payload: dict[str, Any], ctx: Context) -> None: ...

    def unannotated(payload, ctx):  # type: ignore[no-untyped-def]
        ...

    assert task(id="opt-model")(with_model).payload_model is Signup
    assert task(id="opt-model-dict")(with_dict).payload_model is None
    assert task(id="opt-model-none")(unannotated).payload_model is None


def test_a_model_declared_after_the_task_is_found_when_asked() -> None:
    declared = task(id="opt-model-later")(_run_with_later_model)
    assert declared.payload_model is LaterModel


def test_an_unresolvable_annotation_elsewhere_does_not_hide_the_model() -> None:
    def run_with(payload: Signup, ctx: Sequence[int]) -> None: ...

    assert payload_model_of(run_with) is Signup


def _run_with_later_model(payload: LaterModel, ctx: Context) -> None: ...


class LaterModel(BaseModel):
    n: int


def test_task_objects_keep_their_public_fields() -> None:
    declared = task(id="opt-fields", max_duration=10, ttl=20)(run)
    assert isinstance(declared, Task)
    assert (declared.id, declared.run, declared.machine) == ("opt-fields", run, "small-1x")
    assert (declared.max_duration_seconds, declared.ttl_seconds) == (10, 20)
    assert declared.module == __name__
    assert declared.source.endswith(f"test_tasks_options.py:{inspect.getsourcelines(run)[1]}")
