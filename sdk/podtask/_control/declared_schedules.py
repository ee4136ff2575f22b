"""The DECLARATIVE `TaskSchedule`s a registration makes from the tasks it registers, and the
changes that bring a namespace's to exactly those. Pure; `registration` applies them.

A task that declares `schedule=` gets one DECLARATIVE TaskSchedule named after it
(`schedules.declarative_schedule_name`), labelled with its task. A registration
- creates the ones missing;
- replaces the spec of the ones that differ from their declaration, keeping `active` as it
  is (deactivating a declared schedule over the API survives a deploy, as a queue's `paused`
  does);
- deletes the DECLARATIVE ones whose task no longer declares a schedule (or is gone);
- never touches an IMPERATIVE one (made over the API): a declared schedule whose name is an
  IMPERATIVE one's is refused (`ScheduleNameTaken`), before anything is registered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podtask._contract.resources import ScheduleType, TaskScheduleDeclaration, TaskScheduleSpec
from podtask._contract.schedules import declarative_schedule_name
from podtask._contract.wire import API_VERSION, LABEL_TASK, TASK_SCHEDULE_KIND


class ScheduleNameTaken(ValueError):
    """A task's declared schedule would take the name of an IMPERATIVE schedule."""

    def __init__(self, task_id: str, name: str) -> None:
        super().__init__(
            f"task {task_id!r} declares a schedule, whose TaskSchedule is named {name!r}, but "
            f"an IMPERATIVE schedule (made over the API) has that name: delete it "
            f"(`podtask schedules delete {name}`) or give the task another id"
        )
        self.task_id = task_id
        self.name = name


def is_declarative(schedule: Mapping[str, Any]) -> bool:
    """Whether a TaskSchedule object is DECLARATIVE (an absent type is IMPERATIVE, the
    model's default)."""
    return (schedule.get("spec") or {}).get("type") == ScheduleType.DECLARATIVE.value


def schedule_resource(
    task_id: str, declaration: TaskScheduleDeclaration, namespace: str
) -> dict[str, Any]:
    """The DECLARATIVE `TaskSchedule` of a task's declaration, as first created (active)."""
    spec = TaskScheduleSpec(
        task_id=task_id,
        cron=declaration.cron,
        timezone=declaration.timezone,
        type=ScheduleType.DECLARATIVE,
    )
    return {
        "apiVersion": API_VERSION,
        "kind": TASK_SCHEDULE_KIND,
        "metadata": {
            "name": declarative_schedule_name(task_id),
            "namespace": namespace,
            "labels": {LABEL_TASK: task_id},
        },
        "spec": spec.to_wire(),
    }


def declared_schedules(tasks: Sequence[Mapping[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The `TaskSchedule`s of the `Task` objects a registration makes (their `spec.schedule`)."""
    wanted = []
    for task in tasks:
        declared = (task.get("spec") or {}).get("schedule")
        if declared:
            declaration = TaskScheduleDeclaration.model_validate(declared)
            wanted.append(schedule_resource(task["metadata"]["name"], declaration, namespace))
    return wanted


def schedule_patch(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any] | None:
    """The merge patch that brings an existing DECLARATIVE `TaskSchedule` to `wanted`, or None
    when it is already so: its spec replaced whole but for `active`, which stays as it is (a
    key the declaration does not have is removed), and its task label set."""
    current = dict(existing.get("spec") or {})
    spec = {**wanted["spec"], "active": current.get("active", True)}
    spec_patch = {key: value for key, value in spec.items() if current.get(key) != value}
    spec_patch |= {key: None for key in current if key not in spec}
    labels = (existing.get("metadata") or {}).get("labels") or {}
    label_patch = {
        key: value
        for key, value in wanted["metadata"]["labels"].items()
        if labels.get(key) != value
    }
    patch: dict[str, Any] = {}
    if spec_patch:
        patch["spec"] = spec_patch
    if label_patch:
        patch["metadata"] = {"labels": label_patch}
    return patch or None


@dataclass(frozen=True)
class ScheduleChanges:
    """What makes a namespace's DECLARATIVE `TaskSchedule`s exactly the declared ones."""

    create: list[dict[str, Any]]
    # (name, merge patch)
    update: list[tuple[str, dict[str, Any]]]
    # (name, uid): deleted only if still that object
    delete: list[tuple[str, str | None]]


def schedule_changes(
    existing: Mapping[str, Mapping[str, Any]], wanted: Sequence[dict[str, Any]]
) -> ScheduleChanges:
    """Create what is missing, patch what differs, delete the DECLARATIVE ones no longer
    declared; `ScheduleNameTaken` when a wanted name is an IMPERATIVE schedule's."""
    create, update = [], []
    for body in wanted:
        name = body["metadata"]["name"]
        found = existing.get(name)
        if found is None:
            create.append(body)
            continue
        if not is_declarative(found):
            raise ScheduleNameTaken(body["spec"]["taskId"], name)
        patch = schedule_patch(found, body)
        if patch is not None:
            update.append((name, patch))
    wanted_names = {body["metadata"]["name"] for body in wanted}
    delete = [
        (name, (found.get("metadata") or {}).get("uid"))
        for name, found in sorted(existing.items())
        if name not in wanted_names and is_declarative(found)
    ]
    return ScheduleChanges(create=create, update=update, delete=delete)
