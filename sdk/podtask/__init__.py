"""podtask: background tasks in Python, run on Kubernetes in pods sized to each task's machine.

This package is what task authors import. It depends on nothing else of ours.
"""

from podtask.context import Context, MachineContext
from podtask.errors import AbortTaskRunError, TaskDeclarationError, TaskModuleImportError
from podtask.machines import DEFAULT_MACHINE, PRESETS, MachinePreset, machine_preset
from podtask.resources import QueueRef, RetryPolicy, RunPhase
from podtask.tasks import Task, queue, task

__all__ = [
    "DEFAULT_MACHINE",
    "PRESETS",
    "AbortTaskRunError",
    "Context",
    "MachineContext",
    "MachinePreset",
    "QueueRef",
    "RetryPolicy",
    "RunPhase",
    "Task",
    "TaskDeclarationError",
    "TaskModuleImportError",
    "machine_preset",
    "queue",
    "task",
]
