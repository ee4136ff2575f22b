"""Admission decisions: a queue's limit, how many runs may start now, and why one waits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueueControls:
    """What the `TaskQueue` resource says, when there is one."""

    concurrency_limit: int | None = None
    paused: bool = False


def effective_limit(controls: QueueControls | None, declared: int | None, default: int) -> int:
    """The live limit: the TaskQueue's, else the task's declaration, else the default.

    A queue is never unbounded: without any declared limit it gets the default.
    """
    if controls is not None and controls.concurrency_limit is not None:
        return controls.concurrency_limit
    if declared is not None:
        return declared
    return default


def free_slots(active: int, limit: int, paused: bool) -> int:
    if paused:
        return 0
    return max(0, limit - active)


def waiting_message(
    queue: str, key: str, active: int, limit: int, paused: bool, position: int
) -> tuple[str, str]:
    """The reason and message of a run's Waiting condition."""
    where = f"queue {queue!r}" + (f" (concurrency key {key!r})" if key else "")
    if paused:
        return "QueuePaused", f"{where} is paused; position {position}"
    return "QueueAtLimit", f"{where} is at its limit {active}/{limit}; position {position}"
