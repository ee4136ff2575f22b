"""`podtask.client`'s schedules against the real API, served by uvicorn over the embedded
cluster: create (and by deduplication key, update), list every page, read, change,
(de)activate, delete, the timezones; the async twins and the module's functions; and the
API's refusals as `PodtaskApiError`s naming the field."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podtask import client as podtask_client
from podtask.client import PodtaskApiError, PodtaskClient


def test_schedules_through_the_client(served_client: PodtaskClient) -> None:
    created = served_client.create_schedule(
        "hello-world", "0 9 * * 1-5", timezone="Europe/Paris", external_id="user-7"
    )
    ident = created["id"]
    assert (created["cron"], created["timezone"], created["externalId"]) == (
        "0 9 * * 1-5",
        "Europe/Paris",
        "user-7",
    )
    assert served_client.get_schedule(ident)["externalId"] == "user-7"
    updated = served_client.update_schedule(ident, cron="@hourly")
    assert (updated["cron"], updated["timezone"], updated["externalId"]) == (
        "@hourly",
        "Europe/Paris",
        "user-7",
    )
    assert served_client.deactivate_schedule(ident)["upcoming"] == []
    assert served_client.activate_schedule(ident)["active"] is True
    assert [s["id"] for s in served_client.list_schedules(task="hello-world")] == [ident]
    assert served_client.list_schedules(active=False) == []
    assert served_client.delete_schedule(ident)["id"] == ident
    assert served_client.list_schedules() == []
    assert "Europe/Paris" in served_client.timezones()


def test_a_deduplication_key_makes_one_schedule_and_lists_go_through_every_page(
    served_client: PodtaskClient,
) -> None:
    first = served_client.create_schedule("hello-world", "@daily", deduplication_key="tenant-1")
    again = served_client.create_schedule(
        "hello-world", "@weekly", deduplication_key="tenant-1", active=False
    )
    assert again["id"] == first["id"] and (again["cron"], again["active"]) == ("@weekly", False)
    others = {served_client.create_schedule("hello-world", "@daily")["id"] for _ in range(4)}
    every = served_client.list_schedules(page_size=2)
    assert [s["id"] for s in every] == sorted(others | {first["id"]})
    assert [s["id"] for s in served_client.list_schedules(active=False, page_size=1)] == [
        first["id"]
    ]
    assert [s["id"] for s in served_client.list_schedules(type="DECLARATIVE")] == []


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"cron": "* * * * * *"}, "cron"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"task": "missing-task"}, "task"),
    ],
)
def test_a_refused_schedule_raises_naming_the_field(
    served_client: PodtaskClient, arguments: dict[str, Any], field: str
) -> None:
    task = arguments.pop("task", "hello-world")
    cron = arguments.pop("cron", "@daily")
    with pytest.raises(PodtaskApiError) as refused:
        served_client.create_schedule(task, cron, **arguments)
    assert (refused.value.status, refused.value.code) == (422, "invalid_request")
    assert field in str(refused.value)
    with pytest.raises(PodtaskApiError) as missing:
        served_client.get_schedule("sched-0000000000000000")
    assert (missing.value.status, missing.value.code) == (404, "schedule_not_found")


def test_the_async_twins_and_the_module_functions(
    served_client: PodtaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:

    async def main() -> dict[str, Any]:
        created = await served_client.create_schedule_async("hello-world", "@daily")
        ident = created["id"]
        seen = {
            "read": await served_client.get_schedule_async(ident),
            "updated": await served_client.update_schedule_async(ident, timezone="Asia/Tokyo"),
            "off": await served_client.deactivate_schedule_async(ident),
            "on": await served_client.activate_schedule_async(ident),
            "listed": await served_client.list_schedules_async(task="hello-world"),
            "zones": await served_client.timezones_async(),
            "deleted": await served_client.delete_schedule_async(ident),
            "left": await served_client.list_schedules_async(),
        }
        await served_client.aclose()
        return {"id": ident, **seen}

    seen = asyncio.run(main())
    assert seen["read"]["id"] == seen["id"] and seen["updated"]["timezone"] == "Asia/Tokyo"
    assert (seen["off"]["active"], seen["on"]["active"]) == (False, True)
    assert [s["id"] for s in seen["listed"]] == [seen["id"]] and "UTC" in seen["zones"]
    assert seen["deleted"]["id"] == seen["id"] and seen["left"] == []

    monkeypatch.setattr(podtask_client, "_default", served_client)
    ident = podtask_client.create_schedule("hello-world", "*/15 * * * *")["id"]
    assert podtask_client.get_schedule(ident)["cron"] == "*/15 * * * *"
    assert [s["id"] for s in podtask_client.list_schedules()] == [ident]
    assert podtask_client.deactivate_schedule(ident)["active"] is False
    assert podtask_client.delete_schedule(ident)["id"] == ident
    assert "America/New_York" in podtask_client.timezones()
