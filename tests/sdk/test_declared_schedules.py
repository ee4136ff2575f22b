"""The DECLARATIVE TaskSchedules a registration makes of its tasks' declared schedules, and the
changes that make a namespace's exactly those (`podtask._control.declared_schedules`)."""

from __future__ import annotations

from typing import Any

import pytest

from podtask._contract.resources import TaskScheduleDeclaration
from podtask._contract.wire import API_VERSION, LABEL_TASK
from podtask._control.declared_schedules import (
    ScheduleNameTaken,
    declared_schedules,
    schedule_changes,
    schedule_patch,
    schedule_resource,
)

PARIS = TaskScheduleDeclaration(cron="0 9 * * 1-5", timezone="Europe/Paris")


def task_body(task_id: str, schedule: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"taskId": task_id, "image": "i", "module": "m.py"}
    if schedule is not None:
        spec["schedule"] = schedule
    return {"metadata": {"name": task_id}, "spec": spec}


def existing(name: str, spec: dict[str, Any], uid: str = "u-1", **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": uid, "labels": labels}, "spec": spec}


def declared_spec(task_id: str = "report", **changes: Any) -> dict[str, Any]:
    spec = {
        "taskId": task_id,
        "cron": "0 9 * * 1-5",
        "timezone": "Europe/Paris",
        "type": "DECLARATIVE",
        "active": True,
    }
    return {**spec, **changes}


def test_a_declared_schedule_is_a_declarative_task_schedule_named_after_its_task() -> None:
    assert schedule_resource("report", PARIS, "ns") == {
        "apiVersion": API_VERSION,
        "kind": "TaskSchedule",
        "metadata": {"name": "report", "namespace": "ns", "labels": {LABEL_TASK: "report"}},
        "spec": declared_spec(),
    }
    tasks = [
        task_body("report", {"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"}),
        task_body("plain", None),
        task_body("hourly", {"cron": "@hourly"}),
    ]
    wanted = declared_schedules(tasks, "ns")
    assert [body["metadata"]["name"] for body in wanted] == ["report", "hourly"]
    assert wanted[1]["spec"]["timezone"] == "UTC"


def test_only_a_changed_declaration_is_patched_and_active_stays_as_it_is() -> None:
    wanted = schedule_resource("report", PARIS, "ns")
    same = existing("report", declared_spec(), **{LABEL_TASK: "report"})
    assert schedule_patch(same, wanted) is None
    # Deactivated over the API: a registration of the same declaration leaves it so ...
    paused = existing("report", declared_spec(active=False), **{LABEL_TASK: "report"})
    assert schedule_patch(paused, wanted) is None
    # ... and one of a new cron changes the cron, not `active`.
    moved = schedule_resource("report", PARIS.model_copy(update={"cron": "0 10 * * *"}), "ns")
    assert schedule_patch(paused, moved) == {"spec": {"cron": "0 10 * * *"}}
    # The spec is replaced whole: what the declaration does not have goes; the label comes.
    edited = existing("report", declared_spec(externalId="x", timezone="UTC"))
    assert schedule_patch(edited, wanted) == {
        "spec": {"timezone": "Europe/Paris", "externalId": None},
        "metadata": {"labels": {LABEL_TASK: "report"}},
    }


def test_changes_create_patch_and_delete_declarative_schedules_only() -> None:
    wanted = [
        schedule_resource("report", PARIS, "ns"),
        schedule_resource("fresh", PARIS, "ns"),
        schedule_resource("moved", TaskScheduleDeclaration(cron="@daily"), "ns"),
    ]
    current = {
        "report": existing("report", declared_spec(), **{LABEL_TASK: "report"}),
        "moved": existing("moved", declared_spec("moved"), **{LABEL_TASK: "moved"}),
        "gone": existing("gone", declared_spec("gone"), uid="u-gone"),
        "sched-0123456789abcdef": existing(
            "sched-0123456789abcdef", {**declared_spec(), "type": "IMPERATIVE"}
        ),
        # No type: IMPERATIVE, the model's default.
        "sched-untyped": existing("sched-untyped", {"taskId": "report", "cron": "@daily"}),
    }
    changes = schedule_changes(current, wanted)
    assert [body["metadata"]["name"] for body in changes.create] == ["fresh"]
    assert changes.update == [("moved", {"spec": {"cron": "@daily", "timezone": "UTC"}})]
    assert changes.delete == [("gone", "u-gone")]


def test_a_declared_schedule_named_like_an_imperative_one_is_refused() -> None:
    wanted = [schedule_resource("sched-0123456789abcdef", PARIS, "ns")]
    current = {
        "sched-0123456789abcdef": existing(
            "sched-0123456789abcdef", {"taskId": "other", "cron": "@daily", "type": "IMPERATIVE"}
        )
    }
    with pytest.raises(ScheduleNameTaken) as taken:
        schedule_changes(current, wanted)
    message = str(taken.value)
    assert "task 'sched-0123456789abcdef'" in message and "IMPERATIVE" in message
    assert taken.value.task_id == taken.value.name == "sched-0123456789abcdef"
