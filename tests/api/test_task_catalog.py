"""The Tasks' catalog (`podtask_api.task_catalog`): the watch lines it reads (pure), and the
triggers it serves against the embedded cluster: from memory once its watch is live, and
never with a Task older than what the trigger's caller could know of (a task registered a
moment ago triggers; a deployment through the API is read back at once)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kubernetes import client as kube_client

from podtask._contract.wire import GROUP, VERSION
from podtask_api.cluster import KubernetesCluster
from podtask_api.run_events import WatchExpired, WatchFailed
from podtask_api.task_catalog import TaskCatalog, TaskChange, apply_change, task_change
from tests.embedded_kube import EmbeddedKube, KubeNamespace
from tests.task_specs import HELLO


def line(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode()


def task(name: str, version: str = "7") -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": version}, "spec": {"taskId": name}}


def test_a_watch_line_adds_changes_and_removes_a_task() -> None:
    tasks: dict[str, dict[str, Any]] = {}
    added = task_change(line("ADDED", task("a", "5")))
    assert added == TaskChange("a", task("a", "5"), "5")
    apply_change(tasks, added)
    apply_change(tasks, task_change(line("MODIFIED", task("a", "6"))))
    assert tasks == {"a": task("a", "6")}
    bookmark = task_change(line("BOOKMARK", {"metadata": {"resourceVersion": "9"}}))
    assert bookmark == TaskChange(None, None, "9")
    apply_change(tasks, bookmark)
    assert tasks == {"a": task("a", "6")}
    apply_change(tasks, task_change(line("DELETED", task("a", "10"))))
    assert tasks == {}


def test_a_watch_error_says_whether_to_list_again() -> None:
    with pytest.raises(WatchExpired):
        task_change(line("ERROR", {"code": 410, "message": "too old resource version"}))
    with pytest.raises(WatchFailed, match="500"):
        task_change(line("ERROR", {"code": 500, "message": "boom"}))
    with pytest.raises(WatchFailed, match="unknown watch event"):
        task_change(line("SOMETHING", task("a")))


# -- against the embedded cluster ---------------------------------------------------------


def wait_until(check: Callable[[], object], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.02)


def catalog_of(client: TestClient) -> TaskCatalog:
    found: TaskCatalog = client.app.state.services.tasks  # type: ignore[attr-defined]
    return found


def trigger(client: TestClient, task_id: str) -> Any:
    return client.post(f"/api/v1/tasks/{task_id}/trigger", json={"payload": {}})


def live_catalog(client: TestClient) -> TaskCatalog:
    """The app's catalog, once a trigger started its watch and the watch is live."""
    assert trigger(client, HELLO.task_id).status_code == 201
    catalog = catalog_of(client)
    wait_until(lambda: catalog.live and catalog.lookup(HELLO.task_id) is not None)
    return catalog


def run_version(namespace: KubeNamespace, response: Any) -> str:
    assert response.status_code == 201, response.text
    return str(namespace.run(response.json()["id"])["spec"]["version"])


def objects(kube: EmbeddedKube) -> Any:
    return kube_client.CustomObjectsApi(kube.api)


def set_task_version(kube: EmbeddedKube, namespace: KubeNamespace, version: str) -> None:
    patch = {"spec": {"version": version}}
    objects(kube).patch_namespaced_custom_object(
        GROUP, VERSION, namespace.name, "tasks", HELLO.task_id, patch
    )


def test_triggers_read_their_task_from_the_watch_and_follow_its_changes(
    embedded_kube: EmbeddedKube, client: TestClient, namespace: KubeNamespace
) -> None:
    catalog = live_catalog(client)
    # Changed by another process (as `podtask dev` registers): followed as the watch says.
    set_task_version(embedded_kube, namespace, "20240502.1")
    wait_until(lambda: (catalog.lookup(HELLO.task_id) or {})["spec"]["version"] == "20240502.1")
    assert run_version(namespace, trigger(client, HELLO.task_id)) == "20240502.1"
    # Deleted elsewhere: once the watch says so, a trigger is the 404 it always was.
    objects(embedded_kube).delete_namespaced_custom_object(
        GROUP, VERSION, namespace.name, "tasks", HELLO.task_id
    )
    wait_until(lambda: catalog.lookup(HELLO.task_id) is None)
    assert trigger(client, HELLO.task_id).status_code == 404


def test_a_task_registered_a_moment_ago_triggers(
    embedded_kube: EmbeddedKube, client: TestClient, namespace: KubeNamespace
) -> None:
    live_catalog(client)
    fresh = HELLO.model_copy(update={"task_id": "just-registered"})
    namespace.deploy_task(fresh)
    # At once, without waiting for the watch: what the catalog lacks is read from the cluster.
    assert trigger(client, "just-registered").status_code == 201


class GatedCluster(KubernetesCluster):
    """The namespace as the API reaches it, but a list of Tasks waits while the gate is shut:
    a test holds a list back to see what the catalog serves meanwhile."""

    def __init__(self, namespace: str, api_client: Any) -> None:
        super().__init__(namespace, api_client)
        self.gate = threading.Event()
        self.gate.set()
        self.lists_begun = 0
        self.lists_done = 0
        self.watches_opened = 0

    def watch_tasks(self, resource_version: str, timeout_seconds: int) -> Any:
        self.watches_opened += 1
        return super().watch_tasks(resource_version, timeout_seconds)

    def list_tasks_at_version(self) -> tuple[list[dict[str, Any]], str]:
        self.lists_begun += 1
        self.gate.wait()
        listed = super().list_tasks_at_version()
        self.lists_done += 1
        return listed


@pytest.fixture
def gated(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> Iterator[tuple[TaskCatalog, GatedCluster]]:
    cluster = GatedCluster.connect(namespace.name, str(embedded_kube.kubeconfig))
    assert isinstance(cluster, GatedCluster)
    catalog = TaskCatalog(cluster)
    try:
        yield catalog, cluster
    finally:
        cluster.gate.set()
        catalog.close()


def test_after_forget_nothing_is_served_from_memory_until_a_new_list(
    gated: tuple[TaskCatalog, GatedCluster],
) -> None:
    catalog, cluster = gated
    catalog.lookup(HELLO.task_id)
    wait_until(lambda: catalog.lookup(HELLO.task_id) is not None)
    cluster.gate.clear()
    catalog.forget()
    assert not catalog.live and catalog.lookup(HELLO.task_id) is None
    # The list after `forget` is held back: until it is in, memory serves nothing.
    wait_until(lambda: cluster.lists_begun == 2)
    assert not catalog.live and catalog.lookup(HELLO.task_id) is None
    cluster.gate.set()
    wait_until(lambda: catalog.lookup(HELLO.task_id) is not None)
    assert cluster.lists_done == 2


def test_a_list_under_way_when_forget_comes_is_followed_by_a_new_one_at_once(
    gated: tuple[TaskCatalog, GatedCluster],
) -> None:
    catalog, cluster = gated
    cluster.gate.clear()
    catalog.lookup(HELLO.task_id)
    wait_until(lambda: cluster.lists_begun == 1)
    # The list may have been read before this process's writes: it may not make the catalog
    # live, and the catalog does not open a watch from it (and wait there for a line, which
    # may be a minute away on kube-apiserver) before it lists again.
    catalog.forget()
    cluster.gate.set()
    wait_until(lambda: catalog.live)
    assert cluster.lists_done == 2 and catalog.lookup(HELLO.task_id) is not None
    assert cluster.watches_opened == 1


def test_a_deployment_through_the_api_is_what_the_next_trigger_gets(
    client: TestClient, namespace: KubeNamespace
) -> None:
    live_catalog(client)
    entry = {
        "id": HELLO.task_id,
        "module": HELLO.module,
        "queue": {"name": "greetings", "concurrencyLimit": 2},
        "machine": "small-1x",
        "retry": {"maxAttempts": 3},
    }
    manifest = {"tasks": [entry], "queues": [entry["queue"]]}
    for version in ("v1", "v2"):
        body = {"manifest": manifest, "image": "registry.local/tasks:2", "version": version}
        deployed = client.post("/api/v1/deployments", json=body)
        assert deployed.status_code == 201, deployed.text
        # No wait: the deployment's answer means its Tasks are what triggers get.
        assert run_version(namespace, trigger(client, HELLO.task_id)) == version
