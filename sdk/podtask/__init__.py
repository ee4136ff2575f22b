"""podtask: background tasks in Python, run on Kubernetes in pods sized to each task's machine.

This package is what task authors import, with `podtask.hooks`, `podtask.metadata`,
`podtask.client` and `podtask.errors`; its `_`-led subpackages are private
(docs/architecture.md). It depends on nothing else of ours.

Each name is imported when it is first used (`__getattr__`), not with the package: every task
pod imports `podtask` before its task runs, and a task that only declares itself should not
pay for the API client or the cron parser (bench/README.md, "Runner start-up (p6)").
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podtask import hooks, metadata
    from podtask._authoring.context import Context, MachineContext, current_context
    from podtask._authoring.idempotency_keys import IdempotencyKey, idempotency_keys
    from podtask._authoring.run_results import RunFailedError, RunHandle, RunResult
    from podtask._authoring.tasks import Task, queue, task
    from podtask._authoring.trigger_options import BatchItem
    from podtask._authoring.waits import Wait, wait
    from podtask._contract.machines import DEFAULT_MACHINE, PRESETS, MachinePreset, machine_preset
    from podtask._contract.resources import QueueRef, RetryPolicy, RunPhase
    from podtask.client import PodtaskApiError, configure
    from podtask.errors import (
        AbortTaskRunError,
        MaxDurationExceededError,
        PayloadValidationError,
        TaskDeclarationError,
        TaskModuleImportError,
        TaskTerminatedError,
    )
    from podtask.hooks import AttemptResult

# Where each public name lives (a submodule of its own when the module is None): the public
# submodules too, as `podtask.client.trigger(...)` after a bare `import podtask` has always worked.
_HOMES: dict[str, str | None] = {
    "client": None,
    "errors": None,
    "hooks": None,
    "metadata": None,
    "Context": "podtask._authoring.context",
    "MachineContext": "podtask._authoring.context",
    "current_context": "podtask._authoring.context",
    "IdempotencyKey": "podtask._authoring.idempotency_keys",
    "idempotency_keys": "podtask._authoring.idempotency_keys",
    "RunFailedError": "podtask._authoring.run_results",
    "RunHandle": "podtask._authoring.run_results",
    "RunResult": "podtask._authoring.run_results",
    "Task": "podtask._authoring.tasks",
    "queue": "podtask._authoring.tasks",
    "task": "podtask._authoring.tasks",
    "BatchItem": "podtask._authoring.trigger_options",
    "Wait": "podtask._authoring.waits",
    "wait": "podtask._authoring.waits",
    "DEFAULT_MACHINE": "podtask._contract.machines",
    "PRESETS": "podtask._contract.machines",
    "MachinePreset": "podtask._contract.machines",
    "machine_preset": "podtask._contract.machines",
    "QueueRef": "podtask._contract.resources",
    "RetryPolicy": "podtask._contract.resources",
    "RunPhase": "podtask._contract.resources",
    "PodtaskApiError": "podtask.client",
    "configure": "podtask.client",
    "AbortTaskRunError": "podtask.errors",
    "MaxDurationExceededError": "podtask.errors",
    "PayloadValidationError": "podtask.errors",
    "TaskDeclarationError": "podtask.errors",
    "TaskModuleImportError": "podtask.errors",
    "TaskTerminatedError": "podtask.errors",
    "AttemptResult": "podtask.hooks",
}


def __getattr__(name: str) -> Any:
    try:
        home = _HOMES[name]
    except KeyError:
        raise AttributeError(f"module 'podtask' has no attribute {name!r}") from None
    value = (
        importlib.import_module(f"podtask.{name}")
        if home is None
        else getattr(importlib.import_module(home), name)
    )
    # Found once: later lookups are plain attribute reads.
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = [
    "DEFAULT_MACHINE",
    "PRESETS",
    "AbortTaskRunError",
    "AttemptResult",
    "BatchItem",
    "Context",
    "IdempotencyKey",
    "MachineContext",
    "MachinePreset",
    "MaxDurationExceededError",
    "PayloadValidationError",
    "PodtaskApiError",
    "QueueRef",
    "RetryPolicy",
    "RunFailedError",
    "RunHandle",
    "RunPhase",
    "RunResult",
    "Task",
    "TaskDeclarationError",
    "TaskModuleImportError",
    "TaskTerminatedError",
    "Wait",
    "configure",
    "current_context",
    "hooks",
    "idempotency_keys",
    "machine_preset",
    "metadata",
    "queue",
    "task",
    "wait",
]
