"""Unit tests of the client's schedule operations without I/O: the request each sends, the
list's query, and their blocking and awaited twins on the client and the module; and what
`podtask schedules` prints."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import pytest

from podtask import client as podtask_client
from podtask._cli.cli_output import schedule_change, schedule_details, schedules_table
from podtask._cli.cli_parser import parser
from podtask._client import api_calls
from podtask.client import PodtaskClient

SCHEDULE_OPERATIONS = (
    "create_schedule",
    "list_schedules",
    "get_schedule",
    "update_schedule",
    "activate_schedule",
    "deactivate_schedule",
    "delete_schedule",
    "timezones",
)


def test_a_create_sends_the_fields_given() -> None:
    call = api_calls.create_schedule("hello-world", "0 9 * * 1-5")
    assert (call.method, call.path) == ("POST", "/api/v1/schedules")
    assert call.body == {
        "task": "hello-world",
        "cron": "0 9 * * 1-5",
        "timezone": "UTC",
        "active": True,
    }
    full = api_calls.create_schedule(
        "hello-world",
        "@daily",
        timezone="Europe/Paris",
        external_id="user-7",
        deduplication_key="user-7-daily",
        active=False,
    )
    assert full.body == {
        "task": "hello-world",
        "cron": "@daily",
        "timezone": "Europe/Paris",
        "active": False,
        "externalId": "user-7",
        "deduplicationKey": "user-7-daily",
    }


def test_an_update_sends_only_what_changes_and_ids_are_quoted() -> None:
    call = api_calls.update_schedule("sched-a", cron="@hourly")
    assert (call.method, call.path, call.body) == (
        "PUT",
        "/api/v1/schedules/sched-a",
        {"cron": "@hourly"},
    )
    assert api_calls.update_schedule("sched-a", task="t", external_id="x").body == {
        "task": "t",
        "externalId": "x",
    }
    assert api_calls.get_schedule("a/b").path == "/api/v1/schedules/a%2Fb"
    assert api_calls.activate_schedule("s").path == "/api/v1/schedules/s/activate"
    assert api_calls.deactivate_schedule("s").path == "/api/v1/schedules/s/deactivate"
    assert api_calls.delete_schedule("s").method == "DELETE"
    assert api_calls.timezones().read({"timezones": ["UTC"]}) == ["UTC"]


def test_the_list_query_and_its_pages() -> None:
    assert api_calls.schedule_list_params() == [("limit", "100")]
    assert api_calls.schedule_list_params(
        task="t", type="IMPERATIVE", active=False, limit=5, cursor="c"
    ) == [
        ("limit", "5"),
        ("task", "t"),
        ("type", "IMPERATIVE"),
        ("active", "false"),
        ("cursor", "c"),
    ]
    page = api_calls.schedule_page(active=True).read({"data": [{"id": "s"}], "nextCursor": "n"})
    assert page == api_calls.SchedulePage([{"id": "s"}], "n")
    assert ("scheduleId", "sched-a") in api_calls.run_filter_params(schedule_id="sched-a")


@pytest.mark.parametrize("name", SCHEDULE_OPERATIONS)
def test_each_operation_is_on_the_client_and_the_module_blocking_and_awaited(name: str) -> None:
    for twin in (name, name + "_async"):
        method = getattr(PodtaskClient, twin)
        function = getattr(podtask_client, twin)
        assert function.__name__ == twin and function.__doc__ == method.__doc__
        parameters = list(inspect.signature(method).parameters)
        assert parameters[0] == "self"
        assert list(inspect.signature(function).parameters) == parameters[1:]
    assert inspect.iscoroutinefunction(getattr(PodtaskClient, name + "_async"))
    assert getattr(PodtaskClient, name).__doc__


NOW = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
VIEW = {
    "id": "sched-0123456789abcdef",
    "task": "hello-world",
    "type": "IMPERATIVE",
    "active": True,
    "cron": "0 9 * * 1-5",
    "timezone": "Europe/Paris",
    "externalId": "user-7",
    "deduplicationKey": None,
    "nextRun": "2026-03-30T07:00:00Z",
    "lastRun": None,
    "lastRunId": None,
    "upcoming": ["2026-03-30T07:00:00Z", "2026-03-31T07:00:00Z"],
    "createdAt": "2026-03-27T11:00:00Z",
    "conditions": [
        {"type": "Ready", "status": "False", "reason": "TaskNotDeployed", "message": "gone"}
    ],
}


def test_what_the_schedules_commands_print() -> None:
    lines = schedules_table([VIEW, {**VIEW, "id": "daily", "active": False, "nextRun": None}])
    head, first, second = lines.splitlines()
    assert head.split() == [
        "ID",
        "TASK",
        "CRON",
        "TIMEZONE",
        "TYPE",
        "ACTIVE",
        "NEXT",
        "RUN",
        "LAST",
        "RUN",
    ]
    assert first.startswith("sched-0123456789abcdef  hello-world  0 9 * * 1-5  Europe/Paris")
    assert " yes " in first and " no " in second and second.rstrip().endswith("-")
    details = schedule_details(VIEW)
    assert "Cron:" in details and "0 9 * * 1-5" in details and "External id:" in details
    assert "Not Ready: TaskNotDeployed: gone" in details
    assert details.count("\n  20") == 2  # the upcoming ticks, in local time
    assert (
        schedule_change(VIEW, "delete") == "Deleted schedule sched-0123456789abcdef (its runs stay)"
    )
    off = schedule_change({**VIEW, "active": False}, "deactivate")
    assert off.startswith("Deactivated sched-0123456789abcdef: hello-world at '0 9 * * 1-5'")
    assert off.endswith("inactive: no runs until it is activated")
    assert "next run 2026-" in schedule_change(VIEW, "activate")


def test_the_schedules_commands_parse() -> None:
    create = parser().parse_args(
        ["schedules", "create", "hello-world", "--cron", "0 9 * * *", "--inactive"]
    )
    assert (create.task, create.cron, create.timezone, create.active) == (
        "hello-world",
        "0 9 * * *",
        "UTC",
        False,
    )
    listing = parser().parse_args(["schedules", "list", "--type", "declarative"])
    assert (listing.type, listing.active) == ("DECLARATIVE", None)
    assert parser().parse_args(["schedules", "list", "--inactive"]).active is False
    update = parser().parse_args(["schedules", "update", "s", "--timezone", "UTC"])
    assert (update.cron, update.timezone, update.task) == (None, "UTC", None)
    with pytest.raises(SystemExit):
        parser().parse_args(["schedules", "create", "hello-world"])  # no --cron
