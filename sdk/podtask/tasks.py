"""The `@task` decorator and the registry of tasks that imported modules declare."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from podtask.context import Context
from podtask.errors import TaskDeclarationError
from podtask.machines import DEFAULT_MACHINE, machine_preset
from podtask.resources import QueueRef, RetryPolicy

RunFunction = Callable[[Any, Context], Any] | Callable[[Any, Context], Awaitable[Any]]

# Task ids name Kubernetes objects (the Task resource, pod labels), so they are DNS labels.
_TASK_ID = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Task:
    """A declared task: its id, its `run` function and its configuration."""

    id: str
    run: RunFunction
    retry: RetryPolicy
    queue: QueueRef
    machine: str
    max_duration_seconds: int | None
    ttl_seconds: int | None
    module: str
    source: str

    def __call__(self, payload: Any, ctx: Context) -> Any:
        return self.run(payload, ctx)

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.run)


M = TypeVar("M", RetryPolicy, QueueRef)

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
    try:
        return kind.model_validate({**defaults, **dict(value or {})})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise TaskDeclarationError(f"task {task_id!r}: invalid {field}: {problems}") from None


def queue(name: str, *, concurrency_limit: int | None = None) -> QueueRef:
    """A queue that several tasks share: pass it as `queue=` to each of them."""
    try:
        return QueueRef(name=name, concurrency_limit=concurrency_limit)
    except ValidationError as exc:
        problems = "; ".join(err["msg"] for err in exc.errors())
        raise TaskDeclarationError(f"queue {name!r} is invalid: {problems}") from None


def task(
    *,
    id: str,
    retry: RetryPolicy | Mapping[str, Any] | None = None,
    queue: QueueRef | Mapping[str, Any] | None = None,
    machine: str = DEFAULT_MACHINE,
    max_duration: int | None = None,
    ttl: int | None = None,
) -> Callable[[RunFunction], Task]:
    """Declare a task whose `run(payload, ctx)` is the decorated function (sync or async)."""
    if not isinstance(id, str) or not _TASK_ID.match(id) or len(id) > 63:
        raise TaskDeclarationError(
            f"task id {id!r} is invalid: use lowercase letters, digits and '-' "
            "(at most 63 characters, starting and ending with a letter or digit)"
        )
    try:
        machine_preset(machine)
    except TaskDeclarationError as exc:
        raise TaskDeclarationError(f"task {id!r}: {exc}") from None
    for name, seconds in (("max_duration", max_duration), ("ttl", ttl)):
        if seconds is not None and (not isinstance(seconds, int) or seconds < 1):
            raise TaskDeclarationError(
                f"task {id!r}: {name} must be a whole number of seconds, at least 1 "
                f"(got {seconds!r})"
            )
    retry_policy = _model(RetryPolicy, retry, id, "retry")
    queue_ref = _model(QueueRef, queue, id, "queue", name=id)

    def declare(fn: RunFunction) -> Task:
        declared = Task(
            id=id,
            run=fn,
            retry=retry_policy,
            queue=queue_ref,
            machine=machine,
            max_duration_seconds=max_duration,
            ttl_seconds=ttl,
            module=fn.__module__,
            source=_source_of(fn),
        )
        existing = _registry.get(id)
        if existing is not None and existing.source != declared.source:
            raise TaskDeclarationError(
                f"task id {id!r} is declared twice: at {existing.source} and at {declared.source}"
            )
        _registry[id] = declared
        return declared

    return declare
