"""Deployments: the pure rules (versions, names, the request), then `POST` and `GET
/api/v1/deployments` over the embedded cluster, and the versions runs are triggered on."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from api_fixtures import API_KEY, assert_error, settings_for
from fastapi.testclient import TestClient
from kubernetes import client as kube_client
from pydantic import ValidationError

from podtask._contract.wire import GROUP, VERSION
from podtask._control.registration import DECLARED_LIMIT_ANNOTATION
from podtask_api.app import create_app
from podtask_api.deployments import (
    LABEL_DEPLOYMENT,
    MAX_MANIFEST_BYTES,
    DeploymentRequest,
    config_map_name,
    newest_first,
    next_version,
)
from tests.embedded_kube import EmbeddedKube, KubeNamespace

IMAGE = "registry.example.com/team/tasks:1.4"


def manifest_task(task_id: str, queue: str = "emails", limit: int | None = 2) -> dict[str, Any]:
    return {
        "id": task_id,
        "module": "tasks/emails.py",
        "queue": {"name": queue, "concurrencyLimit": limit},
        "machine": "small-1x",
        "retry": {"maxAttempts": 3},
        "maxDuration": 300,
    }


def manifest(*tasks: dict[str, Any]) -> dict[str, Any]:
    queues = {t["queue"]["name"]: t["queue"] for t in tasks}
    return {"tasks": list(tasks), "queues": [queues[name] for name in sorted(queues)]}


# -- pure ---------------------------------------------------------------------------------------


def test_versions_count_up_within_a_day() -> None:
    today = date(2024, 5, 1)
    assert next_version([], today) == "20240501.1"
    assert next_version(["20240501.1", "20240501.9", "20240501.10", "v2"], today) == "20240501.11"
    assert next_version(["20240430.7", "20240501.x"], today) == "20240501.1"


def test_each_version_has_its_own_readable_record_name() -> None:
    assert config_map_name("20240501.1") == "podtask-deployment-20240501.1"
    assert config_map_name("v1-rc.2") == "podtask-deployment-v1-rc.2"
    upper, lower = config_map_name("V1"), config_map_name("v1")
    assert upper != lower and upper.startswith("podtask-deployment-v1-")
    assert config_map_name("a_b").startswith("podtask-deployment-a-b-")


def test_the_request_checks_image_version_and_manifest() -> None:
    good = {"manifest": manifest(manifest_task("send")), "image": IMAGE}
    assert DeploymentRequest.model_validate(good).version is None
    for image in ("", "has space:1", "UPPER/name:1", "name:tag with space"):
        with pytest.raises(ValidationError, match="image"):
            DeploymentRequest.model_validate({**good, "image": image})
    for version in ("", "-v1", "a" * 64, "1 2", "v1/2"):
        with pytest.raises(ValidationError, match="version"):
            DeploymentRequest.model_validate({**good, "version": version})
    # A queue name is a label value too: at most 63 characters, said so.
    long_queue = manifest(manifest_task("send", queue="q" * 64))
    with pytest.raises(ValidationError, match="at most 63 characters"):
        DeploymentRequest.model_validate({**good, "manifest": long_queue})
    for field, value in (("machine", "huge"), ("id", "Send_Email")):
        bad = manifest({**manifest_task("send"), field: value})
        with pytest.raises(ValidationError, match=field):
            DeploymentRequest.model_validate({**good, "manifest": bad})


def test_deployments_are_listed_newest_first() -> None:
    def record(version: str, created_at: str) -> dict[str, Any]:
        data = {"version": version, "image": IMAGE, "createdAt": created_at, "tasks": '["a"]'}
        return {"data": data}

    views = newest_first(
        [
            record("1", "2024-05-01T10:00:00.000001Z"),
            record("3", "2024-05-02T09:00:00.000000Z"),
            {"data": {"version": "broken"}},
            record("2", "2024-05-01T10:00:00.000002Z"),
        ]
    )
    assert [view.version for view in views] == ["3", "2", "1"]
    assert views[0].tasks == ["a"] and views[0].queues == []


# -- over the embedded cluster ------------------------------------------------------------------


def _objects(kube: EmbeddedKube, namespace: KubeNamespace, plural: str) -> dict[str, Any]:
    listed = kube_client.CustomObjectsApi(kube.api).list_namespaced_custom_object(
        GROUP, VERSION, namespace.name, plural
    )
    return {item["metadata"]["name"]: item for item in listed["items"]}


def _deploy(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/v1/deployments", json=body)
    assert response.status_code == 201, response.text
    deployed: dict[str, Any] = response.json()
    return deployed


def test_a_deployment_registers_tasks_and_queues_and_is_listed(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace, client: TestClient
) -> None:
    first = _deploy(
        client,
        {"manifest": manifest(manifest_task("send"), manifest_task("digest")), "image": IMAGE},
    )
    assert first["version"].endswith(".1") and first["image"] == IMAGE
    assert first["tasks"] == ["send", "digest"] and first["queues"] == ["emails"]
    tasks = _objects(embedded_kube, namespace, "tasks")
    # The namespace's tasks are exactly the manifest's: `hello-world`, deployed by hand, is gone.
    assert sorted(tasks) == ["digest", "send"]
    assert tasks["send"]["spec"]["image"] == IMAGE
    assert tasks["send"]["spec"]["version"] == first["version"]
    assert tasks["send"]["spec"]["maxDurationSeconds"] == 300
    queue = _objects(embedded_kube, namespace, "taskqueues")["emails"]
    assert queue["spec"] == {"concurrencyLimit": 2, "paused": False}
    assert queue["metadata"]["annotations"][DECLARED_LIMIT_ANNOTATION] == "2"

    # A limit changed live survives a deployment that declares the same limit.
    kube_client.CustomObjectsApi(embedded_kube.api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace.name, "taskqueues", "emails", {"spec": {"concurrencyLimit": 5}}
    )
    second_task = {**manifest_task("send"), "maxDuration": None}
    second = _deploy(
        client, {"manifest": manifest(second_task), "image": "tasks:2", "version": "v2.0"}
    )
    assert second["version"] == "v2.0"
    tasks = _objects(embedded_kube, namespace, "tasks")
    assert sorted(tasks) == ["send"]
    # The spec is replaced whole: a max duration no longer declared is gone.
    assert "maxDurationSeconds" not in tasks["send"]["spec"]
    assert (
        _objects(embedded_kube, namespace, "taskqueues")["emails"]["spec"]["concurrencyLimit"] == 5
    )

    listed = client.get("/api/v1/deployments").json()["deployments"]
    assert [(d["version"], d["image"], d["tasks"]) for d in listed] == [
        ("v2.0", "tasks:2", ["send"]),
        (first["version"], IMAGE, ["send", "digest"]),
    ]
    assert listed[0]["createdAt"] == second["createdAt"]
    records = kube_client.CoreV1Api(embedded_kube.api).list_namespaced_config_map(
        namespace.name, label_selector=LABEL_DEPLOYMENT
    )
    assert sorted(r.metadata.labels[LABEL_DEPLOYMENT] for r in records.items) == sorted(
        [first["version"], "v2.0"]
    )

    # The next generated version counts on from today's first.
    third = _deploy(client, {"manifest": manifest(manifest_task("send")), "image": IMAGE})
    assert third["version"] == first["version"][:-1] + "2"

    # A deployment whose tasks no longer use `emails`: its queue goes (no run of it is left),
    # and the API lists the current tasks' queues only.
    moved = manifest(manifest_task("send", queue="outbox"))
    assert _deploy(client, {"manifest": moved, "image": IMAGE})["queues"] == ["outbox"]
    assert sorted(_objects(embedded_kube, namespace, "taskqueues")) == ["outbox"]
    assert [q["name"] for q in client.get("/api/v1/queues").json()["data"]] == ["outbox"]


def test_new_runs_take_the_current_version_and_old_runs_keep_theirs(
    namespace: KubeNamespace, client: TestClient
) -> None:
    body = {"manifest": manifest(manifest_task("send")), "image": "tasks:1", "version": "v1"}
    _deploy(client, body)
    old_run = client.post("/api/v1/tasks/send/trigger", json={"payload": 1}).json()["id"]
    _deploy(client, {**body, "image": "tasks:2", "version": "v2"})
    new_run = client.post("/api/v1/tasks/send/trigger", json={"payload": 2}).json()["id"]

    assert client.get(f"/api/v1/runs/{new_run}").json()["version"] == "v2"
    assert namespace.run(new_run)["spec"]["image"] == "tasks:2"
    assert client.get(f"/api/v1/runs/{old_run}").json()["version"] == "v1"
    assert namespace.run(old_run)["spec"]["image"] == "tasks:1"
    # A replay is the old run again: its version, not the current one.
    replayed = client.post(f"/api/v1/runs/{old_run}/replay").json()["id"]
    assert client.get(f"/api/v1/runs/{replayed}").json()["version"] == "v1"


def test_a_version_is_deployed_once(client: TestClient, namespace: KubeNamespace) -> None:
    body = {"manifest": manifest(manifest_task("send")), "image": IMAGE, "version": "v1"}
    _deploy(client, body)
    error = assert_error(
        client.post("/api/v1/deployments", json={**body, "image": "tasks:other"}),
        409,
        "deployment_exists",
    )
    assert "'v1'" in error["message"]
    assert [d["image"] for d in client.get("/api/v1/deployments").json()["deployments"]] == [IMAGE]


def test_an_invalid_deployment_is_422_naming_the_field_and_changes_nothing(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace, client: TestClient
) -> None:
    cases = [
        (manifest({**manifest_task("send"), "machine": "huge"}), "manifest.tasks.0.machine"),
        (manifest({**manifest_task("send"), "colour": "red"}), "manifest.tasks.0.colour"),
        (manifest({**manifest_task("send"), "queue": {"name": "Bad_Q"}}), "manifest"),
        ({"tasks": [manifest_task("send")], "queues": []}, "manifest"),
        ({"tasks": "send"}, "manifest.tasks"),
        (
            manifest({**manifest_task("send"), "schedule": {"cron": "0 9 * *"}}),
            "manifest.tasks.0.schedule.cron",
        ),
        (
            manifest({**manifest_task("send"), "schedule": {"cron": "@daily", "timezone": "X/Y"}}),
            "manifest.tasks.0.schedule.timezone",
        ),
    ]
    for bad, field in cases:
        error = assert_error(
            client.post("/api/v1/deployments", json={"manifest": bad, "image": IMAGE}),
            422,
            "invalid_request",
        )
        assert field in [d["field"] for d in error["details"]], (field, error)
    error = assert_error(
        client.post("/api/v1/deployments", json={"image": IMAGE}), 422, "invalid_request"
    )
    assert error["details"][0]["field"] == "manifest"
    big = manifest({**manifest_task("send"), "module": "m" * MAX_MANIFEST_BYTES})
    assert_error(
        client.post("/api/v1/deployments", json={"manifest": big, "image": IMAGE}),
        413,
        "manifest_too_large",
    )
    assert sorted(_objects(embedded_kube, namespace, "tasks")) == ["hello-world"]
    assert client.get("/api/v1/deployments").json() == {"deployments": []}


def test_a_deployment_registers_its_declared_schedules(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace, client: TestClient
) -> None:
    report = {**manifest_task("report"), "schedule": {"cron": "0 9 * * 1-5", "timezone": "UTC"}}
    _deploy(client, {"manifest": manifest(report, manifest_task("send")), "image": IMAGE})
    schedules = _objects(embedded_kube, namespace, "taskschedules")
    assert sorted(schedules) == ["report"]
    assert schedules["report"]["spec"]["type"] == "DECLARATIVE"
    assert schedules["report"]["spec"]["cron"] == "0 9 * * 1-5"

    # No longer declared: deleted.
    _deploy(client, {"manifest": manifest(manifest_task("report")), "image": IMAGE})
    assert _objects(embedded_kube, namespace, "taskschedules") == {}

    # A task whose declared schedule would take an IMPERATIVE schedule's name: 409, nothing
    # registered, and the version not taken.
    kube_client.CustomObjectsApi(embedded_kube.api).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace.name,
        "taskschedules",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "TaskSchedule",
            "metadata": {"name": "sched-0123456789abcdef"},
            "spec": {"taskId": "report", "cron": "@daily", "type": "IMPERATIVE"},
        },
    )
    clash = {**manifest_task("sched-0123456789abcdef"), "schedule": {"cron": "@hourly"}}
    body = {"manifest": manifest(clash), "image": IMAGE, "version": "clash"}
    error = assert_error(client.post("/api/v1/deployments", json=body), 409, "schedule_conflict")
    assert "IMPERATIVE" in error["message"] and error["details"]["task"] == clash["id"]
    assert sorted(_objects(embedded_kube, namespace, "tasks")) == ["report"]
    assert "clash" not in [
        d["version"] for d in client.get("/api/v1/deployments").json()["deployments"]
    ]


def test_podtask_devs_api_with_process_pods_refuses_a_deployment_saying_where_to_deploy(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    # Its tasks are the modules it serves: a deployment would replace them with tasks whose
    # module files its pods may not have ("no such file" at run time).
    # Simulated pods (`--runtime simulated`) run no image either.
    for runtime in ("processes", "simulated"):
        settings = settings_for(embedded_kube, namespace, dev_mode=True, dev_runtime=runtime)
        with TestClient(
            create_app(settings), headers={"Authorization": f"Bearer {API_KEY}"}
        ) as dev_api:
            refused = dev_api.post(
                "/api/v1/deployments",
                json={"manifest": manifest(manifest_task("send")), "image": IMAGE},
            )
            error = assert_error(refused, 409, "dev_server")
            assert "`podtask dev` server" in error["message"]
            assert "PODTASK_API_URL" in error["message"]
            assert dev_api.get("/api/v1/deployments").json() == {"deployments": []}
    assert sorted(_objects(embedded_kube, namespace, "tasks")) == ["hello-world"]
    # Pods that run images (`--runtime containers`) run what is deployed: it is taken.
    settings = settings_for(embedded_kube, namespace, dev_mode=True, dev_runtime="containers")
    with TestClient(
        create_app(settings), headers={"Authorization": f"Bearer {API_KEY}"}
    ) as dev_api:
        _deploy(dev_api, {"manifest": manifest(manifest_task("send")), "image": IMAGE})
    assert sorted(_objects(embedded_kube, namespace, "tasks")) == ["send"]
