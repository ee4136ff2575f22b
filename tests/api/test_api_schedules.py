"""`/api/v1/schedules` and `/api/v1/timezones` over the embedded cluster: creating (and, by
deduplication key, updating), listing a page at a time, reading, changing, activating,
deactivating and deleting schedules; a DECLARATIVE schedule only (de)activated; every bad
input a 422 naming its field, never a 500; and a schedule's runs (`GET /runs?scheduleId=`)."""

from __future__ import annotations

from typing import Any

import pytest
from api_fixtures import HELLO, READ_KEY, assert_error, bearer
from fastapi.testclient import TestClient

from podtask._contract.wire import API_VERSION, GROUP, LABEL_SCHEDULE, LABEL_TASK, VERSION
from podtask_api.task_runs import build_task_run
from podtask_api.trigger_requests import TriggerRequest
from tests.embedded_kube import KubeNamespace

SCHEDULES = "taskschedules"
DAILY = {"task": "hello-world", "cron": "0 9 * * *"}


def stored(namespace: KubeNamespace, name: str) -> dict[str, Any]:
    found: dict[str, Any] = namespace._objects.get_namespaced_custom_object(
        GROUP, VERSION, namespace.name, SCHEDULES, name
    )
    return found


def stored_names(namespace: KubeNamespace) -> list[str]:
    listed = namespace._objects.list_namespaced_custom_object(
        GROUP, VERSION, namespace.name, SCHEDULES
    )
    return sorted(item["metadata"]["name"] for item in listed["items"])


def declare(namespace: KubeNamespace, task_id: str = "hello-world", cron: str = "0 6 * * *") -> str:
    """What registration (`podtask deploy`, `podtask dev`) makes of `@task(schedule=...)`."""
    body = {
        "apiVersion": API_VERSION,
        "kind": "TaskSchedule",
        "metadata": {"name": task_id, "labels": {LABEL_TASK: task_id}},
        "spec": {"taskId": task_id, "cron": cron, "timezone": "UTC", "type": "DECLARATIVE"},
    }
    namespace._objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace.name, SCHEDULES, body
    )
    return task_id


def create(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/v1/schedules", json={**DAILY, **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_a_schedule_is_created_read_and_stored_as_a_task_schedule(
    client: TestClient, namespace: KubeNamespace
) -> None:
    created = create(client, timezone="Europe/Paris", externalId="user-7")
    assert created["id"].startswith("sched-")
    assert {k: created[k] for k in ("task", "type", "active", "cron", "timezone")} == {
        "task": "hello-world",
        "type": "IMPERATIVE",
        "active": True,
        "cron": "0 9 * * *",
        "timezone": "Europe/Paris",
    }
    assert created["externalId"] == "user-7" and created["deduplicationKey"] is None
    assert len(created["upcoming"]) == 10 and created["nextRun"] == created["upcoming"][0]
    assert created["lastRun"] is None and created["lastRunId"] is None
    assert created["createdAt"] and created["conditions"] == []

    obj = stored(namespace, created["id"])
    assert obj["metadata"]["labels"] == {LABEL_TASK: "hello-world"}
    assert obj["spec"] == {
        "taskId": "hello-world",
        "cron": "0 9 * * *",
        "timezone": "Europe/Paris",
        "type": "IMPERATIVE",
        "active": True,
        "externalId": "user-7",
    }
    read = client.get(f"/api/v1/schedules/{created['id']}")
    assert read.status_code == 200 and read.json()["id"] == created["id"]
    # What the operator writes shows as the last run.
    namespace._objects.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace.name,
        SCHEDULES,
        created["id"],
        {"status": {"lastTimestamp": "2026-03-27T08:00:00Z", "lastRunId": "run-1"}},
    )
    again = client.get(f"/api/v1/schedules/{created['id']}").json()
    assert (again["lastRun"], again["lastRunId"]) == ("2026-03-27T08:00:00Z", "run-1")


def test_creating_the_same_deduplication_key_again_updates_the_one_schedule(
    client: TestClient, namespace: KubeNamespace
) -> None:
    first = create(client, deduplicationKey="user-7-daily", externalId="user-7")
    second = client.post(
        "/api/v1/schedules",
        json={"task": "hello-world", "cron": "30 8 * * 1-5", "deduplicationKey": "user-7-daily"},
    )
    assert second.status_code == 200, second.text
    updated = second.json()
    assert updated["id"] == first["id"] and updated["cron"] == "30 8 * * 1-5"
    assert updated["externalId"] is None  # the body, wholly
    assert updated["deduplicationKey"] == "user-7-daily"
    other = create(client, deduplicationKey="user-8-daily")
    assert stored_names(namespace) == sorted([first["id"], other["id"]])


def test_schedules_are_listed_by_filter_a_page_at_a_time(
    client: TestClient, namespace: KubeNamespace
) -> None:
    namespace.deploy_task(HELLO.model_copy(update={"task_id": "other"}))
    ids = {create(client)["id"] for _ in range(3)}
    inactive = create(client, task="other", active=False)["id"]
    declared = declare(namespace)

    every: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/schedules", params=params)
        assert page.status_code == 200, page.text
        assert len(page.json()["data"]) <= 2
        every += [s["id"] for s in page.json()["data"]]
        if (cursor := page.json()["nextCursor"]) is None:
            break
    assert every == sorted(ids | {inactive, declared})

    def listed(**params: Any) -> set[str]:
        response = client.get("/api/v1/schedules", params=params)
        assert response.status_code == 200, response.text
        return {s["id"] for s in response.json()["data"]}

    assert listed(task="other") == {inactive}
    assert listed(type="DECLARATIVE") == {declared}
    assert listed(type="IMPERATIVE", task="hello-world") == ids
    assert listed(active="false") == {inactive}
    assert listed(active="true", type="IMPERATIVE") == ids
    # A cursor goes on only with the filters it was made for.
    active = client.get("/api/v1/schedules", params={"limit": 1, "active": "true"}).json()
    other = client.get("/api/v1/schedules", params={"cursor": active["nextCursor"]})
    assert_error(other, 422, "invalid_request")
    assert_error(client.get("/api/v1/schedules", params={"type": "DAILY"}), 422, "invalid_request")
    assert_error(client.get("/api/v1/schedules", params={"limit": 500}), 422, "invalid_request")


def test_a_schedule_is_changed_by_the_fields_given(
    client: TestClient, namespace: KubeNamespace
) -> None:
    created = create(client, externalId="user-7")
    path = f"/api/v1/schedules/{created['id']}"
    changed = client.put(path, json={"cron": "@hourly", "timezone": "America/New_York"})
    assert changed.status_code == 200, changed.text
    view = changed.json()
    assert (view["cron"], view["timezone"], view["externalId"]) == (
        "@hourly",
        "America/New_York",
        "user-7",
    )
    assert client.put(path, json={"externalId": None}).json()["externalId"] is None
    namespace.deploy_task(HELLO.model_copy(update={"task_id": "other"}))
    moved = client.put(path, json={"task": "other"})
    assert moved.status_code == 200 and moved.json()["task"] == "other"
    assert stored(namespace, created["id"])["metadata"]["labels"][LABEL_TASK] == "other"
    assert client.put(path, json={}).json()["cron"] == "@hourly"


def test_activating_and_deactivating_any_schedule(
    client: TestClient, namespace: KubeNamespace
) -> None:
    for ident in (create(client)["id"], declare(namespace)):
        off = client.post(f"/api/v1/schedules/{ident}/deactivate")
        assert off.status_code == 200, off.text
        assert (off.json()["active"], off.json()["nextRun"], off.json()["upcoming"]) == (
            False,
            None,
            [],
        )
        assert stored(namespace, ident)["spec"]["active"] is False
        on = client.post(f"/api/v1/schedules/{ident}/activate")
        assert on.status_code == 200 and on.json()["active"] is True
        assert len(on.json()["upcoming"]) == 10


def test_a_declarative_schedule_is_changed_and_deleted_only_where_it_is_declared(
    client: TestClient, namespace: KubeNamespace
) -> None:
    declared = declare(namespace)
    changed = client.put(f"/api/v1/schedules/{declared}", json={"cron": "@daily"})
    error = assert_error(changed, 409, "declarative_schedule")
    assert "change it where the task declares it" in error["message"]
    assert_error(client.delete(f"/api/v1/schedules/{declared}"), 409, "declarative_schedule")
    assert stored(namespace, declared)["spec"]["cron"] == "0 6 * * *"
    read = client.get(f"/api/v1/schedules/{declared}").json()
    assert read["type"] == "DECLARATIVE" and read["id"] == "hello-world"


def test_deleting_a_schedule_answers_it_as_it_was(
    client: TestClient, namespace: KubeNamespace
) -> None:
    created = create(client)
    deleted = client.delete(f"/api/v1/schedules/{created['id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["id"] == created["id"] and deleted.json()["cron"] == "0 9 * * *"
    assert stored_names(namespace) == []
    assert_error(client.delete(f"/api/v1/schedules/{created['id']}"), 404, "schedule_not_found")


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("PUT", ""),
        ("DELETE", ""),
        ("POST", "/activate"),
        ("POST", "/deactivate"),
    ],
)
def test_an_unknown_schedule_is_a_404(client: TestClient, method: str, suffix: str) -> None:
    for ident in ("sched-0000000000000000", "Not_A_Name"):
        body = {"cron": "@daily"} if method == "PUT" else None
        response = client.request(method, f"/api/v1/schedules/{ident}{suffix}", json=body)
        error = assert_error(response, 404, "schedule_not_found")
        assert error["details"] == {"id": ident}


BAD_FIELDS = [
    ({"cron": "61 * * * *"}, "cron"),
    ({"cron": "0 0 9 * * *"}, "cron"),  # seconds: not a 5-field cron
    ({"cron": "@every_minute"}, "cron"),
    ({"cron": 9}, "cron"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": ""}, "timezone"),
    ({"task": "no-such-task"}, "task"),
    ({"task": "Not A Task"}, "task"),
    ({"externalId": "x" * 300}, "externalId"),
    ({"unknown": 1}, "unknown"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_FIELDS)
def test_a_bad_field_is_a_422_naming_it_on_create_and_on_change(
    client: TestClient, namespace: KubeNamespace, fields: dict[str, Any], field: str
) -> None:
    created = client.post("/api/v1/schedules", json={**DAILY, **fields})
    error = assert_error(created, 422, "invalid_request")
    assert field in [d["field"] for d in error["details"]], error
    assert field in error["message"]
    existing = create(client)["id"]
    changed = client.put(f"/api/v1/schedules/{existing}", json=fields)
    error = assert_error(changed, 422, "invalid_request")
    assert field in [d["field"] for d in error["details"]], error
    assert stored(namespace, existing)["spec"]["cron"] == "0 9 * * *"


def test_what_the_422s_say(client: TestClient) -> None:
    cron = assert_error(
        client.post("/api/v1/schedules", json={**DAILY, "cron": "61 * * * *"}),
        422,
        "invalid_request",
    )
    assert "'61 * * * *'" in cron["message"] or "61 * * * *" in cron["message"]
    zone = assert_error(
        client.post("/api/v1/schedules", json={**DAILY, "timezone": "Mars/Olympus"}),
        422,
        "invalid_request",
    )
    assert "Mars/Olympus" in zone["message"]
    task = assert_error(
        client.post("/api/v1/schedules", json={**DAILY, "task": "no-such-task"}),
        422,
        "invalid_request",
    )
    assert "not deployed" in task["message"] and task["details"][0]["type"] == "task_not_found"
    missing = assert_error(client.post("/api/v1/schedules", json={}), 422, "invalid_request")
    assert {d["field"] for d in missing["details"]} == {"task", "cron"}
    assert_error(client.post("/api/v1/schedules", content=b"{"), 400, "invalid_json")


def test_a_read_only_key_reads_schedules_and_changes_none(
    keys_secret: object, client: TestClient
) -> None:
    created = create(client)
    reader = bearer(READ_KEY)
    assert client.get("/api/v1/schedules", headers=reader).status_code == 200
    assert client.get(f"/api/v1/schedules/{created['id']}", headers=reader).status_code == 200
    assert client.get("/api/v1/timezones", headers=reader).status_code == 200
    for method, suffix in (("POST", ""), ("PUT", "/x"), ("DELETE", "/x"), ("POST", "/x/activate")):
        refused = client.request(method, "/api/v1/schedules" + suffix, json=DAILY, headers=reader)
        assert_error(refused, 403, "read_only_key")
    assert client.get("/api/v1/schedules", headers={"Authorization": ""}).status_code == 401


def test_the_timezones_a_schedule_may_use(client: TestClient) -> None:
    response = client.get("/api/v1/timezones")
    assert response.status_code == 200
    zones = response.json()["timezones"]
    assert zones == sorted(zones) and {"UTC", "Europe/Paris", "America/New_York"} <= set(zones)
    for zone in ("Asia/Tokyo", "America/Argentina/Buenos_Aires"):
        created = client.post("/api/v1/schedules", json={**DAILY, "timezone": zone})
        assert created.status_code == 201 and zone in zones


def test_the_runs_of_a_schedule_are_listed_by_its_id(
    client: TestClient, namespace: KubeNamespace
) -> None:
    """The operator labels each run a schedule triggers; the list selects on it."""
    for name, schedule in (("run-s1", "sched-a"), ("run-s2", "sched-b"), ("run-plain", None)):
        run = build_task_run(HELLO, TriggerRequest(), name)
        if schedule is not None:
            run["metadata"]["labels"][LABEL_SCHEDULE] = schedule
        namespace.create_run(run)
    listed = client.get("/api/v1/runs", params={"scheduleId": "sched-a"})
    assert listed.status_code == 200, listed.text
    assert [r["id"] for r in listed.json()["data"]] == ["run-s1"]
    assert client.get("/api/v1/runs", params={"scheduleId": "sched-c"}).json()["data"] == []
    bad = client.get("/api/v1/runs", params={"scheduleId": "not a label"})
    assert_error(bad, 422, "invalid_request")
