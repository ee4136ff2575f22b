"""`GET /api/v1/tasks`, `GET /api/v1/queues`, and pausing, resuming and limiting a queue (a
merge patch on its TaskQueue's spec, which the operator watches)."""

from __future__ import annotations

from typing import Any

import pytest
from api_fixtures import HELLO, assert_error, attempt_token, bearer
from fastapi.testclient import TestClient

from podtask._contract.resources import OutOfMemoryPolicy, RetryPolicy, TaskScheduleDeclaration
from podtask._contract.wire import API_VERSION, GROUP, VERSION
from podtask_api.catalog_views import queue_view, task_view
from tests.embedded_kube import EmbeddedKube, KubeNamespace


def add_queue(
    kube: EmbeddedKube,
    namespace: KubeNamespace,
    name: str,
    limit: int | None = None,
    status: dict[str, Any] | None = None,
) -> None:
    """What `podtask deploy` (and the operator, for the counts) do."""
    objects = kube._objects
    objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace.name,
        "taskqueues",
        {
            "apiVersion": API_VERSION,
            "kind": "TaskQueue",
            "metadata": {"name": name},
            "spec": {"concurrencyLimit": limit, "paused": False},
        },
    )
    if status is not None:
        objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace.name, "taskqueues", name, {"status": status}
        )


def stored_spec(kube: EmbeddedKube, namespace: KubeNamespace, name: str) -> dict[str, Any]:
    found = kube._objects.get_namespaced_custom_object(
        GROUP, VERSION, namespace.name, "taskqueues", name
    )
    spec: dict[str, Any] = found["spec"]
    return spec


def test_tasks_are_listed_with_their_configuration(
    client: TestClient, namespace: KubeNamespace
) -> None:
    retry = RetryPolicy(max_attempts=2, out_of_memory=OutOfMemoryPolicy(machine="large-1x"))
    namespace.deploy_task(
        HELLO.model_copy(update={"task_id": "another", "retry": retry, "ttl_seconds": 60})
    )
    response = client.get("/api/v1/tasks")
    assert response.status_code == 200, response.text
    tasks = response.json()["data"]
    assert [t["id"] for t in tasks] == ["another", "hello-world"]
    assert tasks[1] == {
        "id": "hello-world",
        "version": "20240501.1",
        "image": "registry.local/tasks:1",
        "module": "tasks.hello",
        "queue": {"name": "greetings", "concurrencyLimit": 2},
        "machine": "small-1x",
        "retry": {
            "maxAttempts": 5,
            "factor": 2.0,
            "minTimeoutMs": 1000,
            "maxTimeoutMs": 60000,
            "randomize": True,
            "outOfMemoryMachine": None,
        },
        "maxDuration": 300,
        "ttl": None,
        "schedule": None,
        "payloadSchema": None,
    }
    assert tasks[0]["retry"]["outOfMemoryMachine"] == "large-1x" and tasks[0]["ttl"] == 60


def test_a_task_shows_the_json_schema_of_its_payload_model(
    client: TestClient, namespace: KubeNamespace
) -> None:
    schema = {
        "type": "object",
        "title": "Greeting",
        "properties": {"name": {"type": "string", "minLength": 1}},
        "required": ["name"],
    }
    namespace.deploy_task(HELLO.model_copy(update={"task_id": "typed", "payload_schema": schema}))
    tasks = {t["id"]: t for t in client.get("/api/v1/tasks").json()["data"]}
    assert tasks["typed"]["payloadSchema"] == schema
    assert tasks["hello-world"]["payloadSchema"] is None


def test_a_task_shows_the_schedule_it_declares(
    client: TestClient, namespace: KubeNamespace
) -> None:
    declared = TaskScheduleDeclaration(cron="0 9 * * 1-5", timezone="Europe/Paris")
    namespace.deploy_task(HELLO.model_copy(update={"task_id": "daily", "schedule": declared}))
    response = client.get("/api/v1/tasks")
    assert response.status_code == 200, response.text
    tasks = {t["id"]: t for t in response.json()["data"]}
    assert tasks["daily"]["schedule"] == {"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"}
    assert tasks["hello-world"]["schedule"] is None


def test_queues_show_limits_pause_and_counts(
    client: TestClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    assert client.get("/api/v1/queues").json() == {"data": []}
    add_queue(embedded_kube, namespace, "greetings", 2, {"running": 2, "queued": 7})
    # Without a limit of its own: the one the operator wrote it applies (its default).
    add_queue(embedded_kube, namespace, "bulk", None, {"limitInForce": 10})
    add_queue(embedded_kube, namespace, "unseen")
    queues = client.get("/api/v1/queues").json()["data"]
    assert queues == [
        {
            "name": "bulk",
            "concurrencyLimit": None,
            "limitInForce": 10,
            "paused": False,
            "running": 0,
            "queued": 0,
        },
        {
            "name": "greetings",
            "concurrencyLimit": 2,
            "limitInForce": 2,
            "paused": False,
            "running": 2,
            "queued": 7,
        },
        {
            "name": "unseen",
            "concurrencyLimit": None,
            "limitInForce": None,
            "paused": False,
            "running": 0,
            "queued": 0,
        },
    ]
    assert client.get("/api/v1/queues/greetings").json() == queues[1]


def test_pause_resume_and_the_concurrency_override(
    client: TestClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    add_queue(embedded_kube, namespace, "greetings", 2)
    paused = client.post("/api/v1/queues/greetings/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True
    assert stored_spec(embedded_kube, namespace, "greetings") == {
        "concurrencyLimit": 2,
        "paused": True,
    }
    assert client.post("/api/v1/queues/greetings/pause").json()["paused"] is True  # again: fine
    assert client.post("/api/v1/queues/greetings/resume").json()["paused"] is False

    url = "/api/v1/queues/greetings/concurrency"
    ten = client.put(url, json={"concurrencyLimit": 10}).json()
    assert ten["concurrencyLimit"] == ten["limitInForce"] == 10  # in force at once
    assert client.put(url, json={"concurrencyLimit": 0}).json()["concurrencyLimit"] == 0
    back = client.put(url, json={"concurrencyLimit": None})
    assert back.status_code == 200 and back.json()["concurrencyLimit"] is None
    assert stored_spec(embedded_kube, namespace, "greetings") == {"paused": False}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"concurrencyLimit": -1},
        {"concurrencyLimit": 1.5},
        {"concurrencyLimit": "3"},
        {"concurrencyLimit": True},
        {"concurrencyLimit": 1, "paused": True},
    ],
)
def test_a_bad_limit_is_422_naming_it(
    client: TestClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace, body: Any
) -> None:
    add_queue(embedded_kube, namespace, "greetings", 2)
    response = client.put("/api/v1/queues/greetings/concurrency", json=body)
    error = assert_error(response, 422, "invalid_request")
    assert {d["field"] for d in error["details"]} <= {"concurrencyLimit", "paused"}
    assert stored_spec(embedded_kube, namespace, "greetings")["concurrencyLimit"] == 2


def test_unknown_queues_are_404(client: TestClient) -> None:
    for method, path in [
        ("GET", "/api/v1/queues/nope"),
        ("POST", "/api/v1/queues/nope/pause"),
        ("POST", "/api/v1/queues/nope/resume"),
        ("POST", "/api/v1/queues/Not%20A%20Name/pause"),
    ]:
        error = assert_error(client.request(method, path), 404, "queue_not_found")
        assert "podtask deploy" in error["message"]
    response = client.put("/api/v1/queues/nope/concurrency", json={"concurrencyLimit": 1})
    assert_error(response, 404, "queue_not_found")


def test_an_attempt_token_may_not_list_or_change_queues(
    client: TestClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    add_queue(embedded_kube, namespace, "greetings", 2)
    # The token of a run whose first attempt has started (the operator has not recorded it).
    run = client.post(f"/api/v1/tasks/{HELLO.task_id}/trigger", json={}).json()["id"]
    token = bearer(attempt_token(run))
    assert_error(client.get("/api/v1/queues", headers=token), 403, "forbidden")
    assert_error(client.get("/api/v1/tasks", headers=token), 403, "forbidden")
    assert_error(client.get("/api/v1/runs", headers=token), 403, "forbidden")
    paused = client.post("/api/v1/queues/greetings/pause", headers=token)
    assert_error(paused, 403, "forbidden")
    assert stored_spec(embedded_kube, namespace, "greetings")["paused"] is False


def test_views_of_malformed_objects() -> None:
    assert task_view({"spec": {"taskId": "x"}}) is None
    assert queue_view({"metadata": {"name": "q"}, "spec": {"concurrencyLimit": "many"}}) == {
        "name": "q",
        "concurrencyLimit": None,
        "limitInForce": None,
        "paused": False,
        "running": 0,
        "queued": 0,
    }
