"""What changed between two readings of `podtask dev`'s task modules, in words: tasks added,
removed or changed (which options, old → new; a schedule as its cron and zone), queues added
or changed.

Pure: `podtask dev`'s watch (`dev_watch`) prints these lines when it registers a saved module.
Option names are the ones `@task(...)` takes (`retry.max_attempts`, `queue.concurrency_limit`,
`max_duration`), so a line points at what the author wrote.
"""

from __future__ import annotations

from typing import Any

from podtask._authoring.manifest import Manifest, ManifestTask
from podtask._contract.resources import QueueRef, TaskScheduleDeclaration

# Not options of the task: the id names it, `podtask deploy` sets the version, a queue's
# limit is the queue's (reported once, on the queue's line), and the payload schema comes from
# the payload model (one word when it changes, not each of its keys); the schedule is said as
# one option, its cron and zone together.
_NOT_TASK_OPTIONS: dict[str, Any] = {
    "id": True,
    "version": True,
    "queue": {"concurrency_limit"},
    "payload_schema": True,
    "schedule": True,
}


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _shown(value: Any) -> str:
    return "unset" if value is None else repr(value) if isinstance(value, str) else str(value)


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`name old → new` for each field that differs (nested fields dotted), sorted by name."""
    before, after = _flat(old), _flat(new)
    return [
        f"{name} {_shown(before.get(name))} → {_shown(after.get(name))}"
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ]


def _declared(task: ManifestTask) -> dict[str, Any]:
    return task.model_dump(mode="json", exclude=_NOT_TASK_OPTIONS)


def _schedule_shown(schedule: TaskScheduleDeclaration | None) -> str:
    return "unset" if schedule is None else f"{schedule.cron!r} ({schedule.timezone})"


def _task_changes(was: ManifestTask, now: ManifestTask) -> list[str]:
    changes = field_changes(_declared(was), _declared(now))
    if was.schedule != now.schedule:
        changes.append(
            f"schedule {_schedule_shown(was.schedule)} → {_schedule_shown(now.schedule)}"
        )
    if was.payload_schema != now.payload_schema:
        changes.append("payload model")
    return changes


def _queue_limit(queue: QueueRef) -> str:
    limit = queue.concurrency_limit
    return "no declared limit" if limit is None else f"concurrency_limit {limit}"


def declaration_changes(old: Manifest, new: Manifest) -> list[str]:
    """One line per task or queue that `new` adds, removes or changes against `old`: tasks by
    id, then queues by name. Empty when the declarations are the same."""
    lines = []
    before = {task.id: task for task in old.tasks}
    after = {task.id: task for task in new.tasks}
    for task_id in sorted(before.keys() | after.keys()):
        was, now = before.get(task_id), after.get(task_id)
        if was is None:
            assert now is not None
            scheduled = (
                "" if now.schedule is None else f", schedule {_schedule_shown(now.schedule)}"
            )
            lines.append(
                f"task {task_id} added (queue {now.queue.name}, machine {now.machine}, "
                f"retry.max_attempts {now.retry.max_attempts}{scheduled})"
            )
        elif now is None:
            lines.append(
                f"task {task_id} removed: new triggers are refused; its runs already started finish"
            )
        elif changes := _task_changes(was, now):
            lines.append(f"task {task_id} changed: {', '.join(changes)}")
    queues_before = {queue.name: queue for queue in old.queues}
    for queue in new.queues:
        was_queue = queues_before.get(queue.name)
        if was_queue is None:
            lines.append(f"queue {queue.name} added ({_queue_limit(queue)})")
        elif was_queue.concurrency_limit != queue.concurrency_limit:
            lines.append(
                f"queue {queue.name} changed: concurrency_limit "
                f"{_shown(was_queue.concurrency_limit)} → {_shown(queue.concurrency_limit)}"
            )
    return lines
