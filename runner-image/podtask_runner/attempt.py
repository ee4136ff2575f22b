"""Running one attempt of a task: from (task, payload, context) to an `AttemptOutcome`.

Everything here is free of network IO so it can be tested in-process; the
caller (`podtask_runner.__main__`) fetches the inputs and reports the outcome.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import signal
import threading
import time
import traceback
from collections.abc import Awaitable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import Any

from podtask.context import Context, MachineContext
from podtask.errors import TaskModuleImportError
from podtask.limits import MAX_OUTPUT_BYTES
from podtask.modules import import_task_module
from podtask.resources import RunError
from podtask.tasks import Task, registered_tasks


class TaskNotFoundError(Exception):
    """The task module imported fine but declares no task with the attempt's task id."""


class OutputNotSerializableError(Exception):
    """The task returned something that is not JSON."""


class OutputTooLargeError(Exception):
    """The task's JSON output is over `MAX_OUTPUT_BYTES`."""


class MaxDurationExceededError(Exception):
    """The attempt ran longer than the task's maxDuration."""


@dataclass(frozen=True)
class AttemptOutcome:
    """What one attempt ended with: the JSON output, or the error."""

    ok: bool
    output: Any = None
    error: RunError | None = None

    @classmethod
    def failure(cls, exc: BaseException) -> AttemptOutcome:
        return cls(ok=False, error=error_from_exception(exc))

    def to_wire(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "output": self.output,
            "error": None if self.error is None else self.error.to_wire(),
        }


def error_from_exception(exc: BaseException) -> RunError:
    message = str(exc)
    if isinstance(exc, SystemExit):
        message = f"the task called sys.exit({exc.code!r})"
    return RunError(
        type=type(exc).__name__,
        message=message,
        stack="".join(traceback.format_exception(exc)),
    )


def find_task(module_ref: str, task_id: str) -> Task:
    """Import the task module and pick the task with `task_id` from what it declared."""
    try:
        module = import_task_module(module_ref)
    except TaskModuleImportError:
        raise
    except BaseException as exc:  # a module may call sys.exit() at import time
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise TaskModuleImportError(
            f"task module {module_ref!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    tasks = registered_tasks()
    if task_id in tasks:
        return tasks[task_id]
    declared = sorted(t.id for t in tasks.values() if t.module == module.__name__)
    raise TaskNotFoundError(
        f"task {task_id!r} is not declared in module {module_ref!r} "
        f"(it declares: {', '.join(declared) or 'no tasks'})"
    )


def context_from_wire(data: Mapping[str, Any]) -> Context:
    """The `Context` the API sends (camelCase JSON) as the task author sees it."""
    machine = data["machine"]
    return Context(
        run_id=str(data["runId"]),
        attempt=int(data["attempt"]),
        task_id=str(data["taskId"]),
        queue=str(data["queue"]),
        machine=MachineContext(
            name=str(machine["name"]),
            cpu=float(machine["cpu"]),
            memory_gb=float(machine["memoryGb"]),
        ),
        started_at=datetime.fromisoformat(str(data["startedAt"])),
        tags=list(data.get("tags") or []),
        metadata=dict(data.get("metadata") or {}),
        concurrency_key=data.get("concurrencyKey"),
        idempotency_key=data.get("idempotencyKey"),
        parent_run_id=data.get("parentRunId"),
        is_test=bool(data.get("isTest", False)),
    )


def encode_output(task_id: str, output: Any) -> str:
    """The output as compact JSON text, or the error that explains why it cannot be sent."""
    try:
        # NaN and Infinity are not JSON, and the TaskRun status would refuse them.
        text = json.dumps(output, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise OutputNotSerializableError(
            f"the output of task {task_id!r} is not JSON: {exc}; "
            "return dicts, lists, strings, numbers, booleans or None"
        ) from None
    size = len(text.encode())
    if size > MAX_OUTPUT_BYTES:
        raise OutputTooLargeError(
            f"the output of task {task_id!r} is {size} bytes of JSON, over the limit of "
            f"{MAX_OUTPUT_BYTES} bytes ({MAX_OUTPUT_BYTES // 1024} KiB); "
            "store large results elsewhere and return a reference"
        )
    return text


@contextmanager
def _alarm(seconds: float | None, task_id: str) -> Iterator[None]:
    """Interrupt synchronous task code after `seconds`; only the main thread gets signals."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise MaxDurationExceededError(_over_time_message(task_id, seconds))

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _over_time_message(task_id: str, seconds: float) -> str:
    return f"task {task_id!r} exceeded its maxDuration of {seconds:g} seconds"


async def _awaited(
    awaitable: Awaitable[Any], task_id: str, limit: float | None, remaining: float | None
) -> Any:
    if limit is None or remaining is None:
        return await awaitable
    try:
        async with asyncio.timeout(max(remaining, 0.0)) as deadline:
            return await awaitable
    except TimeoutError:
        # A TimeoutError of the task's own (a slow HTTP call, say) is the task's error.
        if deadline.expired():
            raise MaxDurationExceededError(_over_time_message(task_id, limit)) from None
        raise


def execute_attempt(
    task: Task, payload: Any, ctx: Context, *, max_duration_seconds: float | None = None
) -> AttemptOutcome:
    """Run the task once (a plain or an `async def` run) and check what it returned."""
    started = time.monotonic()
    try:
        with _alarm(max_duration_seconds, task.id):
            result = task.run(payload, ctx)
        if inspect.isawaitable(result):
            remaining = (
                None
                if max_duration_seconds is None
                else max_duration_seconds - (time.monotonic() - started)
            )
            result = asyncio.run(_awaited(result, task.id, max_duration_seconds, remaining))
        text = encode_output(task.id, result)
    except (Exception, SystemExit) as exc:
        return AttemptOutcome.failure(exc)
    # Round-trip so the reported output is exactly what JSON carries (tuples become lists).
    return AttemptOutcome(ok=True, output=json.loads(text))
