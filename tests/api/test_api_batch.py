"""`POST /api/v1/tasks/batch` over the embedded cluster: item order, all or none, and errors
that name the item.

The 1,000-item batch in one request, through the Python client, is in test_api_client.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from api_fixtures import HELLO, assert_error
from fastapi.testclient import TestClient

from podtask._contract.resources import TaskSpec
from podtask._contract.wire import API_VERSION
from podtask_api.run_names import idempotent_run_name
from tests.embedded_kube import KubeNamespace

BATCH = "/api/v1/tasks/batch"
OTHER = HELLO.model_copy(update={"task_id": "other-task", "machine": "micro"})


def item(payload: Any = None, task: str = "hello-world", **options: Any) -> dict[str, Any]:
    return {"task": task, "payload": payload, "options": options}


def test_a_batch_creates_a_run_per_item_in_order(
    client: TestClient, namespace: KubeNamespace
) -> None:
    namespace.deploy_task(OTHER)
    response = client.post(
        BATCH,
        json={
            "items": [
                item({"n": 0}),
                item({"n": 1}, task="other-task", tags=["b"], maxAttempts=1),
                {"task": "hello-world"},
            ]
        },
    )
    assert response.status_code == 201, response.text
    runs = response.json()["runs"]
    assert [run["isCached"] for run in runs] == [False, False, False]
    assert sorted(run["id"] for run in runs) == namespace.run_names()
    specs = [namespace.run(run["id"])["spec"] for run in runs]
    assert [spec["taskId"] for spec in specs] == ["hello-world", "other-task", "hello-world"]
    assert [spec.get("payload") for spec in specs] == [{"n": 0}, {"n": 1}, None]
    assert specs[1]["tags"] == ["b"]
    assert specs[1]["machine"] == "micro"
    # maxAttempts changes the run's copy of the retry policy, not the task's.
    assert specs[1]["retry"]["maxAttempts"] == 1
    assert specs[0]["retry"]["maxAttempts"] == HELLO.retry.max_attempts
    assert all("parentRunId" not in spec for spec in specs)


def test_an_invalid_option_in_one_item_is_422_naming_it_and_creates_nothing(
    client: TestClient, namespace: KubeNamespace
) -> None:
    items = [item(n) for n in range(10)]
    items[7]["options"] = {"machine": "huge", "colour": "red"}
    error = assert_error(client.post(BATCH, json={"items": items}), 422, "invalid_request")
    assert {d["field"] for d in error["details"]} == {
        "items.7.options.machine",
        "items.7.options.colour",
    }
    assert "items.7.options.machine" in error["message"]
    assert namespace.run_names() == []


def test_an_unknown_task_in_one_item_is_404_naming_it_and_creates_nothing(
    client: TestClient, namespace: KubeNamespace
) -> None:
    items = [item(n) for n in range(5)]
    items[3]["task"] = "no-such-task"
    error = assert_error(client.post(BATCH, json={"items": items}), 404, "task_not_found")
    assert error["message"].startswith("item 3: task 'no-such-task' is not deployed")
    assert error["details"] == [
        {
            "item": 3,
            "field": "items.3.task",
            "message": "task 'no-such-task' is not deployed",
            "taskId": "no-such-task",
        }
    ]
    assert namespace.run_names() == []


def test_a_payload_over_the_limit_is_413_naming_the_item(
    client: TestClient, namespace: KubeNamespace
) -> None:
    items = [item("small"), item("x" * (512 * 1024)), item("also small")]
    error = assert_error(client.post(BATCH, json={"items": items}), 413, "payload_too_large")
    assert error["message"].startswith("item 1: the payload is 524290 bytes")
    assert [(d["item"], d["field"]) for d in error["details"]] == [(1, "items.1.payload")]
    assert namespace.run_names() == []


def test_batch_size_is_one_to_a_thousand(client: TestClient, namespace: KubeNamespace) -> None:
    for items in ([], [item()] * 1001):
        error = assert_error(client.post(BATCH, json={"items": items}), 422, "invalid_request")
        assert [d["field"] for d in error["details"]] == ["items"]
    assert_error(client.post(BATCH, json={}), 422, "invalid_request")
    assert namespace.run_names() == []


def test_a_batch_may_be_larger_than_one_trigger_but_is_capped(client: TestClient) -> None:
    # 40 payloads of 100 KiB: over the single-trigger body limit, within the batch's.
    items = [item("x" * (100 * 1024)) for _ in range(40)]
    assert client.post(BATCH, json={"items": items}).status_code == 201
    huge = b'{"items": [' + b"1," * (9 * 1024 * 1024) + b"1]}"
    response = client.post(BATCH, content=huge, headers={"Content-Type": "application/json"})
    error = assert_error(response, 413, "request_too_large")
    assert "batch" in error["message"]


def test_repeated_idempotency_keys_are_one_run(
    client: TestClient, namespace: KubeNamespace
) -> None:
    existing = client.post(
        "/api/v1/tasks/hello-world/trigger", json={"options": {"idempotencyKey": "old"}}
    ).json()["id"]
    response = client.post(
        BATCH,
        json={
            "items": [
                item(1, idempotencyKey="new"),
                item(2, idempotencyKey="new"),
                item(3, idempotencyKey="old"),
                item(4),
            ]
        },
    )
    assert response.status_code == 201, response.text
    runs = response.json()["runs"]
    assert runs[0] == {"id": runs[1]["id"], "isCached": False}
    assert runs[1]["isCached"] is True
    assert runs[2] == {"id": existing, "isCached": True}
    assert runs[3]["isCached"] is False
    assert len(namespace.run_names()) == 3

    again = client.post(BATCH, json={"items": [item(1, idempotencyKey="new")]})
    assert again.status_code == 200
    assert again.json()["runs"] == [{"id": runs[0]["id"], "isCached": True}]


def test_a_create_failing_midway_deletes_the_runs_already_created(
    client: TestClient, namespace: KubeNamespace
) -> None:
    # Another trigger's run already has the name the key of item 30 maps to: only the create
    # finds that out, after other items' runs exist.
    squatter = idempotent_run_name("hello-world", "taken", 1)
    namespace.create_run(
        {
            "apiVersion": API_VERSION,
            "kind": "TaskRun",
            "metadata": {"name": squatter},
            "spec": {**_run_spec(HELLO), "idempotencyKey": "someone-else"},
        }
    )
    items = [item(n) for n in range(60)]
    items[30]["options"] = {"idempotencyKey": "taken"}
    error = assert_error(client.post(BATCH, json={"items": items}), 409, "idempotency_conflict")
    assert error["message"].startswith("item 30: this idempotency key collides")
    assert error["message"].endswith("no run of this batch was created")
    assert error["details"][0]["item"] == 30
    assert namespace.run_names() == [squatter]


def _run_spec(task: TaskSpec) -> dict[str, Any]:
    return {
        "taskId": task.task_id,
        "version": task.version,
        "image": task.image,
        "module": task.module,
        "machine": task.machine,
        "queue": task.queue.to_wire(),
    }


@pytest.mark.parametrize("field", ["parentRunId", "parent_run_id"])
def test_the_parent_run_cannot_be_set_in_the_body(
    client: TestClient, namespace: KubeNamespace, field: str
) -> None:
    response = client.post(BATCH, json={"items": [{"task": "hello-world", field: "run-x"}]})
    assert_error(response, 422, "invalid_request")
    options = {"options": {field: "run-x"}}
    assert_error(
        client.post("/api/v1/tasks/hello-world/trigger", json=options), 422, "invalid_request"
    )
    assert namespace.run_names() == []
