"""Unit tests of the schedules' rules in the API: what a schedule shows (`schedule_view`),
what a create does by its deduplication key, the patches of a change, what may not be
changed, the list's filters, the timezones offered, and the runs of a schedule by label."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from podtask._contract.wire import LABEL_SCHEDULE, LABEL_TASK
from podtask_api.errors import ApiError, validation_error
from podtask_api.run_listing import RunFilters
from podtask_api.schedule_requests import (
    NewSchedule,
    ScheduleChange,
    ScheduleFilters,
    ScheduleRequest,
    ScheduleUpdate,
    activity_patch,
    declarative_conflict,
    plan_creation,
    unknown_task,
    update_patch,
)
from podtask_api.schedule_views import schedule_view, schedule_views

NOW = datetime(2026, 3, 27, 12, 0, 30, tzinfo=UTC)


def _schedule(
    spec: dict[str, Any], status: dict[str, Any] | None = None, name: str = "sched-a"
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": "u-1",
            "creationTimestamp": "2026-03-01T08:00:00Z",
            "labels": {LABEL_TASK: spec.get("taskId", "hello-world")},
        },
        "spec": {"taskId": "hello-world", "cron": "0 9 * * *", **spec},
        "status": status or {},
    }


def test_a_schedule_shows_its_fields_and_its_next_ten_ticks_in_utc() -> None:
    schedule = _schedule(
        {"timezone": "Europe/Paris", "type": "IMPERATIVE", "externalId": "user-7"},
        {
            "lastTimestamp": "2026-03-27T08:00:00Z",
            "lastRunId": "run-x",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Scheduled"}],
        },
    )
    view = schedule_view(schedule, NOW)
    assert view["id"] == "sched-a" and view["task"] == "hello-world"
    assert (view["type"], view["active"], view["timezone"]) == ("IMPERATIVE", True, "Europe/Paris")
    assert (view["externalId"], view["deduplicationKey"]) == ("user-7", None)
    assert (view["lastRun"], view["lastRunId"]) == ("2026-03-27T08:00:00Z", "run-x")
    assert view["createdAt"] == "2026-03-01T08:00:00Z"
    assert view["conditions"][0]["reason"] == "Scheduled"
    # 09:00 in Paris: 08:00 UTC until the clocks go forward on 2026-03-29, then 07:00 UTC.
    assert view["upcoming"][:3] == [
        "2026-03-28T08:00:00Z",
        "2026-03-29T07:00:00Z",
        "2026-03-30T07:00:00Z",
    ]
    assert len(view["upcoming"]) == 10 and view["nextRun"] == view["upcoming"][0]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t in view["upcoming"])


def test_an_inactive_schedule_has_no_next_run() -> None:
    view = schedule_view(_schedule({"active": False}), NOW)
    assert view["active"] is False and view["nextRun"] is None and view["upcoming"] == []


def test_defaults_of_a_bare_schedule_and_a_status_the_api_cannot_read() -> None:
    view = schedule_view(_schedule({}, {"lastTimestamp": "not a time", "conditions": 3}), NOW)
    assert (view["type"], view["timezone"], view["active"]) == ("IMPERATIVE", "UTC", True)
    assert view["lastRun"] is None and view["conditions"] == []
    assert view["nextRun"] == "2026-03-28T09:00:00Z"


def test_a_cron_written_around_the_api_shows_no_ticks_and_a_malformed_one_is_left_out() -> None:
    kubectl_made = schedule_view(_schedule({"cron": "0 0 9 * * *"}), NOW)
    assert (kubectl_made["cron"], kubectl_made["upcoming"], kubectl_made["nextRun"]) == (
        "0 0 9 * * *",
        [],
        None,
    )
    nowhere = schedule_view(_schedule({"timezone": "Mars/Olympus"}), NOW)
    assert (nowhere["timezone"], nowhere["upcoming"]) == ("Mars/Olympus", [])
    bad = _schedule({}, name="sched-bad")
    del bad["spec"]["taskId"]
    with pytest.raises(ValidationError):
        schedule_view(bad, NOW)
    assert [v["id"] for v in schedule_views([bad, _schedule({})], NOW)] == ["sched-a"]


def _errors(model: type[Any], body: dict[str, Any]) -> ApiError:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(body)
    return validation_error(refused.value.errors())


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"cron": "61 * * * *"}, "cron", "61 * * * *"),
        ({"cron": "0 0 9 * * *"}, "cron", "0 0 9 * * *"),
        ({"cron": "every day"}, "cron", "every day"),
        ({"cron": ""}, "cron", "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Mars/Olympus"),
        ({"timezone": "../etc/passwd"}, "timezone", "../etc/passwd"),
        ({"task": "Not A Task"}, "task", "task"),
        ({"externalId": "x" * 257}, "externalId", "256"),
        ({"deduplicationKey": ""}, "deduplicationKey", "deduplicationKey"),
        ({"active": "sometimes"}, "active", "active"),
        ({"color": "blue"}, "color", "color"),
    ],
)
def test_a_bad_field_of_a_new_schedule_is_a_422_naming_it(
    body: dict[str, Any], field: str, says: str
) -> None:
    error = _errors(ScheduleRequest, {"task": "hello-world", "cron": "0 9 * * *", **body})
    assert error.status == 422 and error.code == "invalid_request"
    assert [d["field"] for d in error.details] == [field]
    assert says in error.message
    assert "Value error" not in error.message  # the contract's words, as they are


def test_a_change_takes_the_fields_given_and_refuses_nulls_but_the_external_id() -> None:
    assert _errors(ScheduleUpdate, {"cron": None}).details[0]["field"] == "cron"
    assert _errors(ScheduleUpdate, {"timezone": "Nowhere/Land"}).details[0]["field"] == "timezone"
    assert _errors(ScheduleUpdate, {"deduplicationKey": "k"}).details[0]["field"] == (
        "deduplicationKey"
    )
    assert update_patch(ScheduleUpdate.model_validate({})) == {"spec": {}}
    patch = update_patch(ScheduleUpdate.model_validate({"cron": "@daily", "externalId": None}))
    assert patch == {"spec": {"cron": "@daily", "externalId": None}}
    moved = update_patch(ScheduleUpdate.model_validate({"task": "other", "timezone": "UTC"}))
    assert moved == {
        "metadata": {"labels": {LABEL_TASK: "other"}},
        "spec": {"taskId": "other", "timezone": "UTC"},
    }
    cron = ScheduleUpdate.model_validate({"cron": "0   9 * *  1-5"}).cron
    assert cron == "0 9 * * 1-5"  # normalised by check_cron
    assert activity_patch(False) == {"spec": {"active": False}}


def test_a_create_makes_the_schedule_or_updates_the_one_its_key_found() -> None:
    request = ScheduleRequest.model_validate(
        {"task": "hello-world", "cron": "*/5 * * * *", "deduplicationKey": "k", "active": False}
    )
    new = plan_creation(request, "sched-k", None)
    assert isinstance(new, NewSchedule)
    assert new.body["kind"] == "TaskSchedule" and new.body["metadata"] == {
        "name": "sched-k",
        "labels": {LABEL_TASK: "hello-world"},
    }
    assert new.body["spec"] == {
        "taskId": "hello-world",
        "cron": "*/5 * * * *",
        "timezone": "UTC",
        "type": "IMPERATIVE",
        "active": False,
        "deduplicationKey": "k",
    }
    existing = _schedule({"externalId": "old", "deduplicationKey": "k"}, name="sched-k")
    change = plan_creation(request, "sched-k", existing)
    assert isinstance(change, ScheduleChange) and change.name == "sched-k"
    # What the request says, wholly: the external id it no longer gives goes.
    assert change.patch["spec"] == {**new.body["spec"], "externalId": None}
    declared = _schedule({"type": "DECLARATIVE"}, name="sched-k")
    with pytest.raises(ApiError) as refused:
        plan_creation(request, "sched-k", declared)
    assert refused.value.status == 409


def test_only_an_imperative_schedule_may_be_changed_or_deleted() -> None:
    assert declarative_conflict(_schedule({"type": "IMPERATIVE"})) is None
    assert declarative_conflict(_schedule({})) is None
    conflict = declarative_conflict(_schedule({"type": "DECLARATIVE"}, name="hello-world"))
    assert conflict is not None and conflict.status == 409
    assert conflict.code == "declarative_schedule"
    assert "change it where the task declares it" in conflict.message


def test_an_unknown_task_is_a_422_naming_the_task_field() -> None:
    error = unknown_task("nope", "tenant-a")
    assert (error.status, error.code) == (422, "invalid_request")
    assert error.details == [
        {"field": "task", "message": error.details[0]["message"], "type": "task_not_found"}
    ]
    assert "'nope'" in error.message and "podtask deploy" in error.message


def test_schedule_filters_select_by_task_label_and_filter_type_and_activity_here() -> None:
    declared = _schedule({"type": "DECLARATIVE"})
    paused = _schedule({"active": False, "type": "IMPERATIVE"})
    other = _schedule({"taskId": "other"})
    assert ScheduleFilters().label_selector() is None and not ScheduleFilters().filters_here
    by_task = ScheduleFilters(task_id="hello-world")
    assert by_task.label_selector() == f"{LABEL_TASK}=hello-world"
    assert [by_task.matches(s) for s in (declared, paused, other)] == [True, True, False]
    imperative = ScheduleFilters(type="IMPERATIVE")
    assert imperative.filters_here
    assert [imperative.matches(s) for s in (declared, paused, other)] == [False, True, True]
    inactive = ScheduleFilters(active=False)
    assert [inactive.matches(s) for s in (declared, paused, other)] == [False, True, False]
    digests = {f.digest() for f in (ScheduleFilters(), by_task, imperative, inactive)}
    assert len(digests) == 4


def test_the_runs_of_a_schedule_are_selected_by_its_label() -> None:
    filters = RunFilters(schedule_id="sched-a")
    assert filters.label_selector() == f"{LABEL_SCHEDULE}=sched-a"
    labelled = {"metadata": {"labels": {LABEL_SCHEDULE: "sched-a"}}, "spec": {}}
    assert filters.matches(labelled)
    assert not filters.matches({"metadata": {"labels": {}}, "spec": {"tags": ["sched-a"]}})
    assert filters.digest() != RunFilters().digest()
    # Lists without it keep their cursors.
    assert RunFilters(task_id="t").digest() == RunFilters(task_id="t", schedule_id=None).digest()
