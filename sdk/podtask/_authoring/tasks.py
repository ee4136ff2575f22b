"""The `@task` decorator and the registry of tasks that imported modules declare.

Everything a task declares is checked here, when its module is imported: a mistake
is a `TaskDeclarationError` that names the task and the option, not a failure in a
pod later. The hooks' signatures and their order are described in `podtask.hooks`.

But for one importer: a task pod's runner (`declarations_registered`). Its module's
declarations were checked when they were registered (`podtask dev`, `podtask deploy`),
and an attempt runs from its TaskRun's spec, not from them; so there the options checked
with the CRD's pydantic models (`retry`, `queue`, `schedule`) are kept as declared and
checked when first read, which a runner does not do before its task runs: a pod does not
import pydantic for them (bench/README.md, "Runner start-up (p6)").
"""

from __future__ import annotations

import inspect
import re
import sys
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from podtask._authoring.context import Context
from podtask._contract.durations import duration_seconds
from podtask._contract.kube_names import TASK_ID_PATTERN
from podtask._contract.limits import MAX_TASK_ID_LENGTH
from podtask._contract.machines import DEFAULT_MACHINE, PRESETS, MachinePreset, machine_preset
from podtask._contract.schedules import DEFAULT_TIMEZONE, InvalidSchedule
from podtask.errors import TaskDeclarationError
from podtask.hooks import (
    HOOK_PARAMETERS,
    CleanupHook,
    CompleteHook,
    ErrorHook,
    InitHook,
    Middleware,
    StartHook,
    SuccessHook,
    TaskHooks,
    signature_problem,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from podtask import client
    from podtask._contract.resources import (
        QueueRef,
        RetryPolicy,
        TaskScheduleDeclaration,
        WireModel,
    )

    RetryOption = RetryPolicy | Mapping[str, Any] | None
    QueueOption = QueueRef | Mapping[str, Any] | None
    ScheduleOption = str | Mapping[str, str] | TaskScheduleDeclaration | None

P = ParamSpec("P")
R = TypeVar("R")

RunFunction = Callable[[Any, Context], Any] | Callable[[Any, Context], Awaitable[Any]]

# Task ids name Kubernetes objects (the Task resource, pod labels), so they are DNS labels.
_TASK_ID = re.compile(TASK_ID_PATTERN)
TASK_ID_RULE = (
    "use lowercase letters, digits and '-' "
    f"(at most {MAX_TASK_ID_LENGTH} characters, starting and ending with a letter or digit)"
)


def is_valid_task_id(task_id: str) -> bool:
    return len(task_id) <= MAX_TASK_ID_LENGTH and bool(_TASK_ID.match(task_id))


def _with_task_id(function: Callable[Concatenate[str, P], R]) -> Callable[Concatenate[Task, P], R]:
    """`function` of `podtask.client` as a method of `Task`: the task's id is its first argument."""

    def method(declared: Task, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return function(declared.id, *args, **kwargs)

    method.__name__ = method.__qualname__ = function.__name__
    method.__doc__ = function.__doc__
    return method


class _ClientFunction:
    """`_with_task_id` of the `podtask.client` function `name`, made when first looked up:
    every task pod declares its tasks before the task runs, and that needs no API client."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __get__(self, declared: Task | None, owner: type[Task]) -> Any:
        from podtask import client

        method = _with_task_id(getattr(client, self._name))
        return method if declared is None else method.__get__(declared, owner)


@dataclass(frozen=True)
class Task:
    """A declared task: its id, its `run` function, its configuration and its own hooks.

    `declared_retry`, `declared_queue` and `declared_schedule` are the options as declared
    (the models once checked); `retry`, `queue` and `schedule` are them checked, when first
    read (see the module's docstring)."""

    id: str
    run: RunFunction
    machine: str
    max_duration_seconds: int | None
    ttl_seconds: int | None
    module: str
    source: str
    hooks: TaskHooks = field(default_factory=TaskHooks)
    declared_retry: RetryOption = None
    declared_queue: QueueOption = None
    declared_schedule: ScheduleOption = None

    @cached_property
    def retry(self) -> RetryPolicy:
        return _retry_policy(self.id, self.declared_retry)

    @cached_property
    def queue(self) -> QueueRef:
        return _queue_ref(self.id, self.declared_queue)

    @cached_property
    def schedule(self) -> TaskScheduleDeclaration | None:
        return _schedule(self.id, self.declared_schedule)

    @property
    def queue_name(self) -> str:
        """The name of its queue as declared, unchecked: a run's context names it."""
        declared = self.declared_queue
        if isinstance(declared, Mapping):
            name = declared.get("name")
        else:
            name = getattr(declared, "name", None)
        return name if isinstance(name, str) and name else self.id

    def __call__(self, payload: Any, ctx: Context) -> Any:
        return self.run(payload, ctx)

    # Triggering from backend code, or from inside another task (the child then carries
    # the parent's run id): `podtask.client`'s functions, with this task's id.
    if TYPE_CHECKING:
        trigger = _with_task_id(client.trigger)
        trigger_async = _with_task_id(client.trigger_async)
        trigger_and_wait = _with_task_id(client.trigger_and_wait)
        trigger_and_wait_async = _with_task_id(client.trigger_and_wait_async)
        batch_trigger = _with_task_id(client.batch_trigger)
        batch_trigger_async = _with_task_id(client.batch_trigger_async)
        batch_trigger_and_wait = _with_task_id(client.batch_trigger_and_wait)
        batch_trigger_and_wait_async = _with_task_id(client.batch_trigger_and_wait_async)
    else:
        trigger = _ClientFunction("trigger")
        trigger_async = _ClientFunction("trigger_async")
        trigger_and_wait = _ClientFunction("trigger_and_wait")
        trigger_and_wait_async = _ClientFunction("trigger_and_wait_async")
        batch_trigger = _ClientFunction("batch_trigger")
        batch_trigger_async = _ClientFunction("batch_trigger_async")
        batch_trigger_and_wait = _ClientFunction("batch_trigger_and_wait")
        batch_trigger_and_wait_async = _ClientFunction("batch_trigger_and_wait_async")

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.run)

    @property
    def payload_model(self) -> type[BaseModel] | None:
        """The pydantic model `run` annotates its payload with, if it does.

        Resolved when asked rather than at declaration, so that a model defined below
        the task in its module (with string annotations) is found too.
        """
        return payload_model_of(self.run)


def payload_model_of(run: Callable[..., Any]) -> type[BaseModel] | None:
    """The `BaseModel` subclass that `run`'s first parameter is annotated with, else None."""
    pydantic = sys.modules.get("pydantic")
    if pydantic is None:
        # Nothing imported pydantic, so no annotation can be a model of it.
        return None
    try:
        first = next(iter(inspect.signature(run).parameters.values()), None)
    except (TypeError, ValueError):
        return None
    if first is None:
        return None
    try:
        annotation = typing.get_type_hints(run).get(first.name)
    except Exception:
        # Another parameter's annotation may name something only imported for type checkers;
        # that is no reason to ignore the payload's own, if it resolves on its own.
        annotation = first.annotation
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, getattr(run, "__globals__", {}))
            except Exception:
                return None
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    return None


M = TypeVar("M", bound="WireModel")

# Whether declarations are checked as they are made (`declarations_registered`).
_checked_when_declared = True


@contextmanager
def declarations_registered() -> Iterator[None]:
    """Inside, the declarations made are those registered already: their `retry`, `queue`
    and `schedule` are checked when first read (the module's docstring)."""
    global _checked_when_declared
    was, _checked_when_declared = _checked_when_declared, False
    try:
        yield
    finally:
        _checked_when_declared = was


_registry: dict[str, Task] = {}


def registered_tasks() -> dict[str, Task]:
    return dict(_registry)


def get_task(task_id: str) -> Task:
    try:
        return _registry[task_id]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise KeyError(f"no task with id {task_id!r} is registered (known: {known})") from None


def _source_of(fn: Callable[..., Any]) -> str:
    try:
        return f"{inspect.getsourcefile(fn)}:{inspect.getsourcelines(fn)[1]}"
    except (OSError, TypeError):
        return getattr(fn, "__module__", "<unknown>")


def _model(
    kind: type[M], value: M | Mapping[str, Any] | None, task_id: str, field: str, **defaults: Any
) -> M:
    if isinstance(value, kind):
        return value
    if value is not None and not isinstance(value, Mapping):
        raise TaskDeclarationError(
            f"task {task_id!r}: {field} must be a {kind.__name__} or a dict, "
            f"got {type(value).__name__} {value!r}"
        )
    from pydantic import ValidationError

    try:
        return kind.model_validate({**defaults, **dict(value or {})})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise TaskDeclarationError(f"task {task_id!r}: invalid {field}: {problems}") from None


def _retry_policy(task_id: str, declared: RetryOption) -> RetryPolicy:
    from podtask._contract.resources import RetryPolicy

    return _model(RetryPolicy, declared, task_id, "retry")


def _queue_ref(task_id: str, declared: QueueOption) -> QueueRef:
    from podtask._contract.resources import QueueRef

    queue_ref = _model(QueueRef, declared, task_id, "queue", name=task_id)
    if not queue_ref.name:
        raise TaskDeclarationError(f"task {task_id!r}: invalid queue: name must not be empty")
    return queue_ref


def queue(name: str, *, concurrency_limit: int | None = None) -> QueueRef:
    """A queue that several tasks share: pass it as `queue=` to each of them."""
    if not isinstance(name, str) or not name:
        raise TaskDeclarationError(f"queue name must be a non-empty string, got {name!r}")
    from pydantic import ValidationError

    from podtask._contract.resources import QueueRef

    try:
        return QueueRef(name=name, concurrency_limit=concurrency_limit)
    except ValidationError as exc:
        problems = "; ".join(err["msg"] for err in exc.errors())
        raise TaskDeclarationError(f"queue {name!r} is invalid: {problems}") from None


def _machine_name(task_id: str, machine: str | MachinePreset) -> str:
    if isinstance(machine, MachinePreset):
        if PRESETS.get(machine.name) != machine:
            valid = ", ".join(PRESETS)
            raise TaskDeclarationError(
                f"task {task_id!r}: machine {machine!r} is not one of the presets; "
                f"valid machines are: {valid}"
            )
        return machine.name
    try:
        return machine_preset(machine).name
    except (TaskDeclarationError, TypeError) as exc:
        # An unhashable value (a dict, say) cannot be looked up: say what is valid all the same.
        message = (
            str(exc)
            if isinstance(exc, TaskDeclarationError)
            else f"unknown machine {machine!r}; valid machines are: {', '.join(PRESETS)}"
        )
        raise TaskDeclarationError(f"task {task_id!r}: {message}") from None


def _whole_seconds(task_id: str, name: str, value: int | timedelta | None) -> int | None:
    if value is None:
        return None
    seconds: float | None = None
    # Declared in code: an int or a timedelta, not a float or a text ("1h" is the CLI's).
    if isinstance(value, int | timedelta) and not isinstance(value, bool):
        seconds = duration_seconds(value)
    if seconds is None or seconds < 1 or seconds != int(seconds):
        raise TaskDeclarationError(
            f"task {task_id!r}: {name} must be a whole number of seconds (an int or a "
            f"timedelta), at least 1 (got {value!r})"
        )
    return int(seconds)


_SCHEDULE_KEYS = ("cron", "timezone")


def _schedule(task_id: str, schedule: object) -> TaskScheduleDeclaration | None:
    """`schedule=`: a cron expression (in UTC), or `{"cron": ..., "timezone": ...}`."""
    if schedule is None:
        return None
    from podtask._contract.resources import TaskScheduleDeclaration
    from podtask._contract.schedules import check_cron, check_timezone

    if isinstance(schedule, TaskScheduleDeclaration):
        return schedule
    if isinstance(schedule, str):
        schedule = {"cron": schedule}
    if not isinstance(schedule, Mapping):
        raise TaskDeclarationError(
            f"task {task_id!r}: schedule must be a cron expression or a dict with 'cron' and "
            f"'timezone', got {type(schedule).__name__} {schedule!r}"
        )
    unknown = sorted(str(key) for key in schedule if key not in _SCHEDULE_KEYS)
    if unknown or "cron" not in schedule:
        problem = f"unknown keys {', '.join(map(repr, unknown))}" if unknown else "no 'cron'"
        raise TaskDeclarationError(
            f"task {task_id!r}: schedule {dict(schedule)!r} has {problem}: give 'cron' and, "
            "optionally, 'timezone' (an IANA zone, UTC by default)"
        )
    try:
        cron = check_cron(schedule["cron"])
        timezone = check_timezone(schedule.get("timezone", DEFAULT_TIMEZONE))
    except InvalidSchedule as exc:
        raise TaskDeclarationError(f"task {task_id!r}: schedule {exc.field}: {exc}") from None
    return TaskScheduleDeclaration(cron=cron, timezone=timezone)


def _hook(task_id: str, kind: str, fn: object, *, option: str | None = None) -> tuple[Any, ...]:
    if fn is None:
        return ()
    problem = signature_problem(fn, HOOK_PARAMETERS[kind])
    if problem is not None:
        raise TaskDeclarationError(f"task {task_id!r}: {option or kind} {problem}")
    return (fn,)


def _middleware(task_id: str, middleware: object) -> tuple[Any, ...]:
    if middleware is None:
        return ()
    if isinstance(middleware, Sequence) and not isinstance(middleware, str):
        layers: tuple[Any, ...] = ()
        for n, layer in enumerate(middleware):
            layers += _hook(task_id, "middleware", layer, option=f"middleware[{n}]")
        return layers
    return _hook(task_id, "middleware", middleware)


def _task_hooks(
    task_id: str,
    *,
    init: object,
    cleanup: object,
    middleware: object,
    on_start: object,
    on_success: object,
    on_error: object,
    on_failure: object,
    on_complete: object,
) -> TaskHooks:
    if on_error is not None and on_failure is not None:
        raise TaskDeclarationError(
            f"task {task_id!r}: on_failure is another name for on_error; give one of them, not both"
        )
    return TaskHooks(
        init=_hook(task_id, "init", init),
        middleware=_middleware(task_id, middleware),
        on_start=_hook(task_id, "on_start", on_start),
        on_success=_hook(task_id, "on_success", on_success),
        on_error=(
            _hook(task_id, "on_error", on_error)
            if on_failure is None
            else _hook(task_id, "on_error", on_failure, option="on_failure")
        ),
        on_complete=_hook(task_id, "on_complete", on_complete),
        cleanup=_hook(task_id, "cleanup", cleanup),
    )


def task(
    *,
    id: str,
    retry: RetryOption = None,
    queue: QueueOption = None,
    machine: str | MachinePreset = DEFAULT_MACHINE,
    max_duration: int | timedelta | None = None,
    ttl: int | timedelta | None = None,
    schedule: ScheduleOption = None,
    init: InitHook | None = None,
    cleanup: CleanupHook | None = None,
    middleware: Middleware | Sequence[Middleware] | None = None,
    on_start: StartHook | None = None,
    on_success: SuccessHook | None = None,
    on_error: ErrorHook | None = None,
    on_failure: ErrorHook | None = None,
    on_complete: CompleteHook | None = None,
) -> Callable[[RunFunction], Task]:
    """Declare a task whose `run(payload, ctx)` is the decorated function (sync or async).

    `retry` and `queue` take the model (`RetryPolicy`, a shared `queue(...)`) or a dict;
    `machine` a preset name (or a `MachinePreset` from `PRESETS`); `max_duration` and
    `ttl` whole seconds or a `timedelta`; `schedule` a cron expression (in UTC) or
    `{"cron": ..., "timezone": "Europe/Paris"}`, on which `podtask dev` and deployments
    trigger it. The hooks are described in `podtask.hooks`; `middleware` may also be a
    list, outermost first.
    """
    if not isinstance(id, str) or not is_valid_task_id(id):
        raise TaskDeclarationError(f"task id {id!r} is invalid: {TASK_ID_RULE}")
    machine_name = _machine_name(id, machine)
    max_duration_seconds = _whole_seconds(id, "max_duration", max_duration)
    ttl_seconds = _whole_seconds(id, "ttl", ttl)
    if _checked_when_declared:
        # Checked as the decorator is made, before it decorates anything.
        schedule = _schedule(id, schedule)
        retry = _retry_policy(id, retry)
        queue = _queue_ref(id, queue)
    task_hooks = _task_hooks(
        id,
        init=init,
        cleanup=cleanup,
        middleware=middleware,
        on_start=on_start,
        on_success=on_success,
        on_error=on_error,
        on_failure=on_failure,
        on_complete=on_complete,
    )

    def declare(fn: RunFunction) -> Task:
        problem = signature_problem(fn, ("payload", "ctx"))
        if problem is not None:
            raise TaskDeclarationError(f"task {id!r}: run {problem}")
        declared = Task(
            id=id,
            run=fn,
            machine=machine_name,
            max_duration_seconds=max_duration_seconds,
            ttl_seconds=ttl_seconds,
            module=fn.__module__,
            source=_source_of(fn),
            hooks=task_hooks,
            declared_retry=retry,
            declared_queue=queue,
            declared_schedule=schedule,
        )
        existing = _registry.get(id)
        if existing is not None and existing.source != declared.source:
            raise TaskDeclarationError(
                f"task id {id!r} is declared twice: at {existing.source} and at {declared.source}"
            )
        _registry[id] = declared
        return declared

    return declare
