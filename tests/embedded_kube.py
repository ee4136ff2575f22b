"""The one embedded Kubernetes API that component tests share, with the podtask CRDs installed.

Tests isolate themselves by namespace: each asks `EmbeddedKube.new_namespace` for its own
and reads and writes podtask objects there, as the operator and `podtask deploy` would.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
from kubernetes import client, config

from podtask._contract.crds import custom_resource_definitions
from podtask._contract.resources import TaskSpec
from podtask._contract.wire import API_VERSION, GROUP, VERSION
from podtask_devcluster import EmbeddedCluster
from podtask_operator.kube_login import kubeconfig_login


class KubeNamespace:
    """One namespace of the embedded cluster, and what tests do to podtask objects in it."""

    def __init__(self, name: str, objects: client.CustomObjectsApi) -> None:
        self.name = name
        self._objects = objects

    def deploy_task(self, spec: TaskSpec) -> None:
        """What `podtask deploy` does: create the Task object."""
        body = {
            "apiVersion": API_VERSION,
            "kind": "Task",
            "metadata": {"name": spec.task_id},
            "spec": spec.to_wire(),
        }
        self._objects.create_namespaced_custom_object(GROUP, VERSION, self.name, "tasks", body)

    def create_run(self, body: dict[str, Any]) -> None:
        self._objects.create_namespaced_custom_object(GROUP, VERSION, self.name, "taskruns", body)

    def run(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self._objects.get_namespaced_custom_object(
            GROUP, VERSION, self.name, "taskruns", name
        )
        return found

    def run_names(self) -> list[str]:
        listed = self._objects.list_namespaced_custom_object(GROUP, VERSION, self.name, "taskruns")
        return sorted(item["metadata"]["name"] for item in listed["items"])

    def set_run_status(self, name: str, status: dict[str, Any]) -> None:
        """What the operator does: merge `status` into the run's status subresource."""
        self._objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.name, "taskruns", name, {"status": status}
        )


T = TypeVar("T")


class Closing(Protocol):
    async def close(self) -> None: ...


def run_then_close(client: Closing, work: Awaitable[T]) -> T:
    """`asyncio.run(work)`, then close `client`'s connections in the same loop: an operator
    client's connections belong to the loop that opened them."""

    async def run() -> T:
        try:
            return await work
        finally:
            await client.close()

    return asyncio.run(run())


class EmbeddedKube:
    """The running embedded cluster, its kubeconfig and a client for it."""

    def __init__(self, cluster: EmbeddedCluster) -> None:
        self.cluster = cluster
        self.kubeconfig = Path(cluster.kubeconfig_path)
        self.api = config.new_client_from_config(config_file=str(self.kubeconfig))
        self.login = kubeconfig_login([self.kubeconfig])
        self._objects = client.CustomObjectsApi(self.api)

    def install_crds(self) -> None:
        extensions = client.ApiextensionsV1Api(self.api)
        for crd in custom_resource_definitions():
            extensions.create_custom_resource_definition(crd)

    def new_namespace(self, prefix: str) -> KubeNamespace:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        client.CoreV1Api(self.api).create_namespace({"metadata": {"name": name}})
        return KubeNamespace(name, self._objects)


@pytest.fixture(scope="session")
def embedded_kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKube]:
    state = tmp_path_factory.mktemp("embedded-kube")
    with EmbeddedCluster(state / "state", port=0, workdir=state) as cluster:
        kube = EmbeddedKube(cluster)
        try:
            kube.install_crds()
            yield kube
        finally:
            kube.api.close()
