"""A real control plane of their own (etcd, kube-apiserver, scheduler, controller-manager)
and the node agent on it, authenticated as `system:node:<name>` with the node's own
certificate; tests drive it as a user would, with kubectl and the kubernetes client on the
admin kubeconfig."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from podtask_devcluster.control_plane import ControlPlane
from podtask_devcluster.images import ImageSet
from podtask_devcluster.kubeapi import Connection
from podtask_devcluster.node_agent import NodeAgent
from podtask_devcluster.nodepods import Timing

NODE = "podtask-local"
NS = "default"
# The agent has these images and no other (it never pulls).
IMAGES = ("python:*",)


class AgentThread:
    """The node agent on an event loop of its own, as the separate process it is in
    `make dev CLUSTER=real`; stopped and started again like a node that goes away."""

    def __init__(
        self,
        plane: ControlPlane,
        state_dir: Path,
        *,
        node: str = NODE,
        runtime: str | None = None,
        simulated_seconds: float | None = None,
    ) -> None:
        self.plane = plane
        self.state_dir = state_dir
        self.node = node
        self.runtime = runtime
        self.simulated_seconds = simulated_seconds
        self.agent: NodeAgent | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> NodeAgent:
        cert, key = self.plane.node_serving_cert(self.node)
        connection = Connection.from_kubeconfig(
            self.plane.node_kubeconfig(self.node), self.state_dir / "credentials"
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.agent = NodeAgent(
            connection,
            self.state_dir,
            cert,
            key,
            node_name=self.node,
            images=ImageSet(IMAGES),
            runtime=self.runtime,
            simulated_seconds=self.simulated_seconds,
            timing=Timing(image_backoff=(1.0, 2.0), config_retry=1.0, restart_backoff=(1.0, 2.0)),
            lease_renew_seconds=1.0,
            status_report_seconds=5.0,
        )
        asyncio.run_coroutine_threadsafe(self.agent.start(), self._loop).result(60)
        return self.agent

    def stop(self) -> None:
        assert self._loop is not None and self.agent is not None and self._thread is not None
        asyncio.run_coroutine_threadsafe(self.agent.stop(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self.agent = None


# A control plane of its own, not the session's: these tests stop the node (node lost).
@pytest.fixture(scope="package")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with ControlPlane(tmp_path_factory.mktemp("control-plane")) as running:
        yield running


def agent_running(agent: AgentThread) -> Iterator[AgentThread]:
    """`agent` started, for a fixture to yield; stopped after (unless a test stopped it)."""
    (agent.state_dir / "credentials").mkdir(exist_ok=True)
    agent.start()
    yield agent
    if agent.agent is not None:
        agent.stop()


@pytest.fixture(scope="package")
def node_agent(
    plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentThread]:
    yield from agent_running(AgentThread(plane, tmp_path_factory.mktemp("node-agent")))


@pytest.fixture(scope="package")
def core(plane: ControlPlane, node_agent: AgentThread) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(plane.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


@pytest.fixture(scope="package")
def kubectl(
    plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., subprocess.CompletedProcess[str]]:
    cache = tmp_path_factory.mktemp("kubectl-cache")

    def run(
        *args: str, input: str | None = None, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = dict(
            os.environ, KUBECONFIG=str(kubeconfig or plane.kubeconfig), KUBECACHEDIR=str(cache)
        )
        result = subprocess.run(
            ["kubectl", *args], input=input, capture_output=True, text=True, env=env, timeout=60
        )
        if check:
            assert result.returncode == 0, result.stderr
        return result

    return run


@pytest.fixture
def name() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


def pod_manifest(
    name: str,
    script: str,
    image: str = "python:3.11",
    restart_policy: str = "Never",
    **container: Any,
) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": NS},
            "spec": {
                "restartPolicy": restart_policy,
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": 30,
                "containers": [
                    {
                        "name": "main",
                        "image": image,
                        "command": ["python", "-c", script],
                        **container,
                    }
                ],
            },
        }
    )


def read_pod(core: client.CoreV1Api, name: str) -> dict[str, Any]:
    """The pod `name` of NS, as JSON."""
    data: dict[str, Any] = core.api_client.sanitize_for_serialization(
        core.read_namespaced_pod(name, NS)
    )
    return data


def pod_events(core: client.CoreV1Api, name: str) -> list[dict[str, Any]]:
    """The Events about the pod `name` of NS, as JSON."""
    listed = core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}")
    return [core.api_client.sanitize_for_serialization(e) for e in listed.items]
