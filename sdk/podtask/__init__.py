"""podtask: background tasks in Python, run on Kubernetes in pods sized to each task's machine.

This package is what task authors import, with `podtask.hooks`, `podtask.metadata`,
`podtask.client` and `podtask.errors`; its `_`-led subpackages are private
(docs/architecture.md). It depends on nothing else of ours.
"""

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
