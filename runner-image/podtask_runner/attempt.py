"""Running one attempt of a task: from (task, payload, context) to its report (`Succeeded`, or
the `CompletionReport` of a failure).

Everything here is free of network IO so it can be tested in-process; the caller
(`podtask_runner.__main__`) fetches the inputs and sends the report.

The order of one attempt:

    1. payload validation   when `run` annotates its payload with a pydantic model
    2. on_start             first attempt of a run only; global hooks, then the task's
    3. init                 global, then the task's; each one's return value becomes `ctx.init`
    4. middleware + run     global middleware outermost, then the task's, then `run`
    5. output check         the output must be JSON (a pydantic model is dumped to JSON)
                            and at most `MAX_OUTPUT_BYTES`
    6. on_success           global, then the task's
    --- the outcome is decided here ---
    7. on_error             failed attempts only (every one of them, not just the last)
    8. on_complete          every attempt, with `AttemptResult(ok, output, error)`
    9. cleanup              every attempt; the task's own, then the global ones in reverse

What happens when something raises:

- Anything in steps 1-6 that raises ends that part of the attempt: the attempt fails
  with that exception (type, message and traceback are what the API records), the
  steps after it up to 6 are skipped, and steps 7-9 run. `AbortTaskRunError`,
  `PayloadValidationError` and an output that is not JSON (or too large) fail it the same
  way; the operator does not retry them (`wire.NON_RETRYABLE_ERRORS`), nor a module that
  fails to import or lacks the task (`find_task`).
- Steps 7-9 cannot change the outcome. An exception in one of them is printed with its
  traceback to stderr (the pod log) and otherwise ignored; the next hook still runs.
- SIGTERM (cancel, eviction, pod deletion) during steps 1-6 raises `TaskTerminatedError`
  in plain code, or cancels async code (which sees `CancelledError`); the attempt fails
  with `TaskTerminatedError` and steps 7-9 run. During steps 7-9 it interrupts nothing.
  Either way the runner then reports and exits with 143 (see `__main__`).
- `max_duration` bounds steps 1-6 the same way, failing the attempt with
  `MaxDurationExceededError` (time the task spends waiting on runs or `wait.for_` is not
  counted). Each of the hooks in steps 7-9 may then run until the
  deadline, or for `AFTER_HOOK_GRACE_SECONDS` if that is later, before it is interrupted.
- An interruption the code catches and swallows still fails the attempt.

`payload` in every hook is the validated model instance once step 1 has passed (the
JSON payload as it came if it failed); `ctx` carries `init` from step 3 on.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from podtask._authoring.context import Context, MachineContext, running_in
from podtask._authoring.modules import import_task_module
from podtask._authoring.run_metadata import RunMetadata
from podtask._authoring.tasks import Task, declarations_registered, registered_tasks
from podtask._client.wait_observers import observed_by
from podtask._contract.json_values import JsonValueError, checked_json_text, stored_size
from podtask._contract.limits import MAX_OUTPUT_BYTES
from podtask.errors import (
    MaxDurationExceededError,
    PayloadValidationError,
    TaskModuleImportError,
    TaskTerminatedError,
)
from podtask.hooks import (
    AttemptResult,
    TaskHooks,
    attempt_hooks,
    hook_name,
    registered_global_hooks,
)
from podtask_runner.author_code import AuthorCode
from podtask_runner.interruptions import Deadline, Interruptions
from podtask_runner.output_capture import write_in_order

if TYPE_CHECKING:
    from typing import TypeAlias

    from podtask._contract.resources import CompletionReport, RunError

    # What an attempt comes to: its report of success, or the model of a failure's report.
    Outcome: TypeAlias = "Succeeded | CompletionReport"

__all__ = [
    "AFTER_HOOK_GRACE_SECONDS",
    "MaxDurationExceededError",
    "OutputNotSerializableError",
    "OutputTooLargeError",
    "Succeeded",
    "TaskNotFoundError",
    "context_from_wire",
    "encode_output",
    "error_from_exception",
    "execute_attempt",
    "failure_report",
    "find_task",
    "validated_payload",
]

# After the deadline, each after-outcome hook still gets this long before it is interrupted.
AFTER_HOOK_GRACE_SECONDS = 5.0


class TaskNotFoundError(Exception):
    """The task module imported fine but declares no task with the attempt's task id."""


class OutputNotSerializableError(Exception):
    """The task returned something that is not JSON."""


class OutputTooLargeError(Exception):
    """The task's JSON output is over `MAX_OUTPUT_BYTES`."""


@dataclass(frozen=True)
class Succeeded:
    """The report of an attempt that succeeded: `CompletionReport(ok=True, output=...)` as the
    wire carries it, without the model, so that a task that ends well costs the runner no
    import of pydantic (about 100 ms of CPU, between the task's end and its report). The API
    reads the report with the model (`test_a_report_of_success_is_the_wire_models`)."""

    output: Any
    ok: Literal[True] = True
    error: None = None

    def to_wire(self) -> dict[str, Any]:
        return {"ok": True, "output": self.output, "error": None}


def failure_report(exc: BaseException) -> CompletionReport:
    """The report of an attempt that ended with `exc`."""
    from podtask._contract.resources import CompletionReport

    return CompletionReport(ok=False, error=error_from_exception(exc))


def error_from_exception(exc: BaseException) -> RunError:
    # The report's models (pydantic's) are imported once the task has run, not before it.
    from podtask._contract.bounded_errors import bounded_error
    from podtask._contract.resources import RunError

    message = str(exc)
    if isinstance(exc, SystemExit):
        message = f"the task called sys.exit({exc.code!r})"
    # Bounded here as the API would store it; lone surrogates (from bytes the task decoded
    # with surrogateescape) mended, so that the report can always be sent.
    return bounded_error(
        RunError(type=type(exc).__name__, message=message, stack=authors_traceback(exc))
    )


def _plumbing() -> tuple[str, ...]:
    """Where the runner's and asyncio's frames come from: between the author's own they say
    nothing to the author. (asyncio only once imported: a plain task's runner has none.)"""
    modules = [sys.modules[__name__], sys.modules.get("asyncio")]
    return tuple(
        os.path.dirname(module.__file__ or "") + os.sep for module in modules if module is not None
    )


def authors_traceback(exc: BaseException) -> str:
    """The formatted traceback with the runner's and asyncio's frames left out, as long as
    some frames are left: an error of the runner's own keeps them all."""
    formatted = traceback.TracebackException.from_exception(exc)
    plumbing = _plumbing()
    seen: set[int] = set()
    pending = [formatted]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        authors = [f for f in current.stack if not f.filename.startswith(plumbing)]
        if authors:
            current.stack = traceback.StackSummary.from_list(authors)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        pending.extend(current.exceptions or ())
    return "".join(formatted.format())


def find_task(module_ref: str, task_id: str) -> Task:
    """Import the task module and pick the task with `task_id` from what it declared."""
    try:
        # An attempt runs from its TaskRun's spec, not from the module's declarations (which
        # were checked as `podtask dev` or `podtask deploy` registered them): their options are
        # checked only when read.
        with declarations_registered():
            module = import_task_module(module_ref)
    except TaskModuleImportError:
        raise
    except BaseException as exc:  # a module may call sys.exit() at import time
        if isinstance(exc, KeyboardInterrupt | TaskTerminatedError):
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
        metadata=RunMetadata(data.get("metadata") or {}),
        concurrency_key=data.get("concurrencyKey"),
        idempotency_key=data.get("idempotencyKey"),
        parent_run_id=data.get("parentRunId"),
        is_test=bool(data.get("isTest", False)),
    )


def encode_output(task_id: str, output: Any) -> str:
    """The output as compact JSON text, or the error that explains why it cannot be sent.

    A pydantic model is sent as its JSON dump, as it would be over any JSON API.
    """
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(output, pydantic.BaseModel):
        output = output.model_dump(mode="json")
    try:
        # What the TaskRun cannot hold (NaN, a lone surrogate, over MAX_JSON_DEPTH levels, an
        # integer beyond int64) the API would refuse: say so here, naming where it is.
        text = checked_json_text(output)
    except JsonValueError as exc:
        raise OutputNotSerializableError(
            f"the output of task {task_id!r} is not JSON a run can hold: "
            f"{exc.problem.at('output')}; return dicts, lists, strings, numbers, booleans or None"
        ) from None
    size = stored_size(text)
    if size > MAX_OUTPUT_BYTES:
        raise OutputTooLargeError(
            f"the output of task {task_id!r} is {size} bytes of JSON, over the limit of "
            f"{MAX_OUTPUT_BYTES} bytes ({MAX_OUTPUT_BYTES // 1024} KiB); "
            "store large results elsewhere and return a reference"
        )
    return text


def validated_payload(task: Task, payload: Any) -> Any:
    """The payload as `run` asked for it: its pydantic model when it annotates one."""
    model = task.payload_model
    if model is None:
        return payload
    from pydantic import ValidationError

    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        # The messages name fields and rules, never the values: payloads stay out of logs.
        problems = tuple(
            f"{'.'.join(str(p) for p in err['loc']) or '(the payload itself)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise PayloadValidationError(
            f"the payload of task {task.id!r} does not match {model.__name__}: "
            + "; ".join(problems),
            problems,
        ) from None


def _over_time(task_id: str, seconds: float) -> Callable[[], BaseException]:
    return lambda: MaxDurationExceededError(
        f"task {task_id!r} exceeded its maxDuration of {seconds:g} seconds"
    )


def execute_attempt(
    task: Task,
    payload: Any,
    ctx: Context,
    *,
    max_duration_seconds: float | None = None,
    global_hooks: TaskHooks | None = None,
    interruptions: Interruptions | None = None,
    after_hook_grace_seconds: float = AFTER_HOOK_GRACE_SECONDS,
) -> Outcome:
    """Run one attempt of `task` with its hooks, in the order the module docstring gives.

    `global_hooks` defaults to those registered with `podtask.hooks`. Without
    `interruptions` (the runner passes its own, installed for the whole process), SIGTERM
    and SIGALRM are handled for the duration of the call when it runs in the main thread.
    """
    hooks = attempt_hooks(
        registered_global_hooks() if global_hooks is None else global_hooks, task.hooks
    )
    with ExitStack() as stack:
        if interruptions is None:
            interruptions = stack.enter_context(Interruptions().installed())
        stack.enter_context(running_in(ctx))
        stack.enter_context(observed_by(interruptions))
        # The loop is only created if some of the author's code is async.
        author = AuthorCode(task.id, interruptions, ctx)
        stack.callback(author.close)
        deadline = (
            None
            if max_duration_seconds is None
            else Deadline(
                time.monotonic() + max_duration_seconds,
                _over_time(task.id, max_duration_seconds),
            )
        )

        output: Any = None
        text = ""
        error: BaseException | None = None
        try:
            with interruptions.interrupting(deadline=deadline):
                interruptions.check()
                payload = validated_payload(task, payload)
                if ctx.attempt == 1:
                    for start_hook in hooks.on_start:
                        author.call(start_hook, payload, ctx)
                for init_hook in hooks.init:
                    ctx = replace(ctx, init=author.call(init_hook, payload, ctx))
                    author.publish(ctx)
                output = author.through_middleware(hooks.middleware, task.run, payload, ctx)
                text = encode_output(task.id, output)
                for success_hook in hooks.on_success:
                    author.call(success_hook, payload, output, ctx)
                interruptions.check()
        except BaseException as exc:
            error = interruptions.explain(exc)

        after = _AfterOutcome(task.id, author, interruptions, deadline, after_hook_grace_seconds)
        if error is not None:
            for error_hook in hooks.on_error:
                after.run("on_error", error_hook, payload, error, ctx)
        result = AttemptResult(
            ok=error is None, output=output if error is None else None, error=error
        )
        for complete_hook in hooks.on_complete:
            after.run("on_complete", complete_hook, payload, result, ctx)
        for cleanup_hook in hooks.cleanup:
            after.run("cleanup", cleanup_hook, payload, ctx)

    if error is not None:
        return failure_report(error)
    # Round-trip so the reported output is exactly what JSON carries (tuples become lists).
    return Succeeded(json.loads(text))


@dataclass(frozen=True)
class _AfterOutcome:
    """Runs the hooks that come after the outcome is decided and cannot change it."""

    task_id: str
    author: AuthorCode
    interruptions: Interruptions
    deadline: Deadline | None
    grace_seconds: float

    def run(self, kind: str, hook: Callable[..., Any], *args: Any) -> None:
        name = hook_name(hook)
        bound = None
        if self.deadline is not None:
            # The deadline, moved by the time the task spent waiting.
            due = self.deadline.at + self.interruptions.waited_seconds
            bound = Deadline(
                max(due, time.monotonic() + self.grace_seconds),
                lambda: MaxDurationExceededError(
                    f"the {kind} hook {name} of task {self.task_id!r} ran past the attempt's "
                    "maxDuration and its grace period"
                ),
            )
        try:
            # SIGTERM does not interrupt these: they are what a stopping attempt still runs.
            with self.interruptions.interrupting(termination=False, deadline=bound):
                self.author.call(hook, *args)
        except BaseException as exc:
            error = self.interruptions.explain(exc)
            write_in_order(
                f"[podtask-runner] the {kind} hook {name} of task {self.task_id!r} raised "
                "(the attempt's outcome stands):\n"
                + "".join(traceback.format_exception(error)).rstrip("\n")
                + "\n"
            )
