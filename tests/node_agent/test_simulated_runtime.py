"""The simulated node (`--runtime simulated`) on a real control plane: a pod bound to it "runs"
for its time without any process and ends Succeeded with exit code 0; deleted while it runs,
it stops as a stopped container does. (A task pod's runs end Completed through the API:
tests/e2e/test_simulated_node.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psutil
import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from podtask_devcluster.control_plane import ControlPlane
from podtask_devcluster.quantities import parse_quantity
from tests.e2e.conftest import wait_until
from tests.node_agent.conftest import NS, AgentThread, agent_running

SIMULATED = "podtask-simulated"
# Long enough for the deletion test to catch the pod while it runs.
SECONDS = 6.0


@pytest.fixture(scope="module")
def simulated_node(
    plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AgentThread]:
    agent = AgentThread(
        plane,
        tmp_path_factory.mktemp("simulated-node"),
        node=SIMULATED,
        runtime="simulated",
        simulated_seconds=SECONDS,
    )
    yield from agent_running(agent)


@pytest.fixture(scope="module")
def core(plane: ControlPlane, simulated_node: AgentThread) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(plane.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def _pod(name: str, grace: int = 30) -> dict[str, Any]:
    # A command that would fail at once if anything ran it.
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "nodeName": SIMULATED,
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": grace,
            "containers": [
                {"name": "main", "image": "any/image:never-pulled", "command": ["/no/such/binary"]}
            ],
        },
    }


def _read(core: client.CoreV1Api, name: str) -> dict[str, Any]:
    found: dict[str, Any] = core.api_client.sanitize_for_serialization(
        core.read_namespaced_pod(name, NS)
    )
    return found


def _children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_a_simulated_pod_runs_for_its_time_without_a_process_and_succeeds(
    core: client.CoreV1Api, name: str
) -> None:
    node = core.read_node(SIMULATED)
    # A busy cluster's worth of pods, as a kwok node has (kube writes 1000 as "1k").
    assert parse_quantity(node.status.allocatable["pods"]) >= 500
    before = _children()
    core.create_namespaced_pod(NS, _pod(name))
    new_processes: set[int] = set()

    def finished() -> dict[str, Any] | None:
        new_processes.update(_children() - before)
        pod = _read(core, name)
        return pod if pod["status"].get("phase") in ("Succeeded", "Failed") else None

    running = wait_until(lambda: _read(core, name)["status"].get("phase") == "Running")
    assert running
    pod = wait_until(finished, timeout=60)
    assert pod["status"]["phase"] == "Succeeded"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
    assert terminated["containerID"].startswith("simulated://")
    # RFC 3339 to the second: at least its time, give or take that second.
    ran = _at(terminated["finishedAt"]) - _at(terminated["startedAt"])
    assert ran.total_seconds() >= SECONDS - 1
    assert new_processes == set(), "the simulated node started a process"
    log = core.read_namespaced_pod_log(name, NS, container="main")
    assert f"simulated: ran {SECONDS:g} s without a process" in log
    reasons = {
        e.reason
        for e in core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}").items
    }
    assert {"Pulled", "Created", "Started"} <= reasons


def test_a_simulated_pod_deleted_while_it_runs_stops_as_a_container_does(
    core: client.CoreV1Api, name: str
) -> None:
    core.create_namespaced_pod(NS, _pod(name, grace=5))
    wait_until(lambda: _read(core, name)["status"].get("phase") == "Running")
    core.delete_namespaced_pod(name, NS)

    def gone() -> bool:
        try:
            core.read_namespaced_pod(name, NS)
        except ApiException as error:
            return int(error.status) == 404
        return False

    wait_until(gone, timeout=60)
    killing = [
        e
        for e in core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}").items
        if e.reason == "Killing"
    ]
    assert killing, json.dumps([e.reason for e in core.list_namespaced_event(NS).items])
