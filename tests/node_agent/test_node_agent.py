"""The node agent on a real control plane: the Node and its Lease, pods bound by the real
scheduler run to completion with `kubectl logs` through the apiserver, OOM, an image the node
lacks, a missing Secret, graceful deletion, the node's own identity, and a restart."""

from __future__ import annotations

import base64
import json
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from podtask_devcluster.control_plane import ControlPlane
from podtask_devcluster.nodestatus import Machine
from tests.e2e.conftest import wait_until
from tests.node_agent.conftest import (
    NODE,
    NS,
    AgentThread,
    pod_events,
    pod_manifest,
    read_pod,
)

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def _phase(core: client.CoreV1Api, name: str, *phases: str) -> dict[str, Any] | None:
    pod = read_pod(core, name)
    return pod if pod.get("status", {}).get("phase") in phases else None


def _finished(core: client.CoreV1Api, name: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_until(lambda: _phase(core, name, "Succeeded", "Failed"))
    return found


def _state(pod: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = pod["status"]["containerStatuses"][0]["state"]
    return state


def _reasons(core: client.CoreV1Api, name: str) -> set[str]:
    return {e["reason"] for e in pod_events(core, name)}


def _gone(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, NS)
    except ApiException as error:
        return int(error.status) == 404
    return False


def test_the_node_shows_with_this_machines_capacity(
    kubectl: Kubectl, node_agent: AgentThread, tmp_path: Path
) -> None:
    node = json.loads(kubectl("get", "node", NODE, "-o", "json").stdout)
    machine = Machine.this_one(tmp_path)
    assert node["status"]["capacity"]["cpu"] == str(machine.cpus)
    assert node["status"]["capacity"]["memory"] == f"{machine.memory_bytes // 1024}Ki"
    assert node["status"]["allocatable"]["pods"] == "110"
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == node_agent.agent.port  # type: ignore[union-attr]
    assert "Ready" in kubectl("get", "nodes").stdout
    events = json.loads(
        kubectl(
            "get",
            "events",
            "--field-selector",
            f"involvedObject.kind=Node,involvedObject.name={NODE}",
            "-o",
            "json",
        ).stdout
    )["items"]
    assert {"Starting", "NodeReady"} <= {e["reason"] for e in events}
    assert all(
        e["source"] == {"component": "kubelet", "host": NODE}
        for e in events
        if e["reason"] == "Starting"
    )

    def lease() -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            kubectl("get", "lease", NODE, "-n", "kube-node-lease", "-o", "json").stdout
        )
        return found

    first = lease()
    assert first["spec"]["holderIdentity"] == NODE
    assert first["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
    wait_until(lambda: lease()["spec"]["renewTime"] != first["spec"]["renewTime"])


def test_a_pod_runs_to_succeeded_and_kubectl_logs_reads_it(
    core: client.CoreV1Api, kubectl: Kubectl, name: str
) -> None:
    script = "import sys\nfor i in range(3): print(f'line {i}')\nsys.stdout.write('no newline')"
    kubectl("create", "-f", "-", input=pod_manifest(name, script))
    pod = _finished(core, name)
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["spec"]["nodeName"] == NODE
    terminated = _state(pod)["terminated"]
    assert terminated["reason"] == "Completed" and terminated["exitCode"] == 0
    conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conditions["PodScheduled"] == conditions["Initialized"] == "True"
    assert conditions["Ready"] == conditions["ContainersReady"] == "False"

    assert kubectl("logs", name).stdout == "line 0\nline 1\nline 2\nno newline"
    assert kubectl("logs", name, "--tail=1").stdout == "no newline"
    assert kubectl("logs", name, "--limit-bytes=6").stdout == "line 0"
    stamped = kubectl("logs", name, "--timestamps", "--since=1h").stdout.splitlines()
    assert stamped[0].endswith("Z line 0") and len(stamped) == 4
    assert kubectl("logs", name, "-f").stdout.startswith("line 0\n")
    previous = kubectl("logs", name, "--previous", check=False)
    assert previous.returncode != 0 and "previous terminated container" in previous.stderr

    events = pod_events(core, name)
    assert {"Pulled", "Created", "Started"} <= {e["reason"] for e in events}
    kubelet = [e for e in events if e["reason"] in ("Pulled", "Created", "Started")]
    assert all(e["source"] == {"component": "kubelet", "host": NODE} for e in kubelet)
    assert all(e["involvedObject"]["fieldPath"] == "spec.containers{main}" for e in kubelet)


def test_a_pod_over_its_memory_limit_ends_oomkilled(
    core: client.CoreV1Api, kubectl: Kubectl, name: str
) -> None:
    script = "import time\nblocks = []\nwhile True:\n    blocks.append(bytearray(8 << 20))\n"
    limits = {"resources": {"limits": {"memory": "64Mi"}, "requests": {"memory": "64Mi"}}}
    kubectl("create", "-f", "-", input=pod_manifest(name, script, **limits))
    pod = _finished(core, name)
    assert pod["status"]["phase"] == "Failed"
    terminated = _state(pod)["terminated"]
    assert terminated["reason"] == "OOMKilled" and terminated["exitCode"] == 137
    wait_until(lambda: "OOMKilling" in _reasons(core, name))


def test_an_image_the_node_lacks_is_a_failed_pull_and_never_starts(
    core: client.CoreV1Api, kubectl: Kubectl, name: str
) -> None:
    kubectl("create", "-f", "-", input=pod_manifest(name, "print('ran')", image="busybox:1.36"))

    def waiting(reason: str) -> dict[str, Any] | None:
        pod = read_pod(core, name)
        statuses = pod.get("status", {}).get("containerStatuses") or []
        found = statuses and (statuses[0]["state"].get("waiting") or {}).get("reason") == reason
        return pod if found else None

    pulled = wait_until(lambda: waiting("ErrImagePull"))
    assert "busybox:1.36" in _state(pulled)["waiting"]["message"]
    backoff = wait_until(lambda: waiting("ImagePullBackOff"))
    assert _state(backoff)["waiting"]["message"].startswith('Back-off pulling image "busybox:1.36"')
    assert backoff["status"]["phase"] == "Pending"
    events = pod_events(core, name)
    failed = [e["message"] for e in events if e["reason"] == "Failed"]
    assert any(m.startswith('Failed to pull image "busybox:1.36"') for m in failed)
    assert "Error: ErrImagePull" in failed
    assert not {"Created", "Started"} & {e["reason"] for e in events}
    logs = kubectl("logs", name, check=False)
    assert "is waiting to start" in logs.stderr
    kubectl("delete", "pod", name, "--wait=true")


def test_a_missing_secret_is_a_config_error_until_it_exists(
    core: client.CoreV1Api, kubectl: Kubectl, name: str
) -> None:
    secret = f"{name}-secret"
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": "token"}}}]
    script = "import os; print('token is', os.environ['TOKEN'])"
    kubectl("create", "-f", "-", input=pod_manifest(name, script, env=env))

    def config_error() -> dict[str, Any] | None:
        pod = read_pod(core, name)
        statuses = pod.get("status", {}).get("containerStatuses") or []
        waiting = (statuses and statuses[0]["state"].get("waiting")) or {}
        return waiting if waiting.get("reason") == "CreateContainerConfigError" else None

    waiting = wait_until(config_error)
    assert waiting["message"] == f'secret "{secret}" not found'
    assert read_pod(core, name)["status"]["phase"] == "Pending"
    wait_until(
        lambda: (
            f'Error: secret "{secret}" not found'
            in [e["message"] for e in pod_events(core, name) if e["reason"] == "Failed"]
        )
    )
    core.create_namespaced_secret(
        NS,
        {
            "metadata": {"name": secret},
            "data": {"token": base64.b64encode(b"s3cret").decode()},
        },
    )
    assert _finished(core, name)["status"]["phase"] == "Succeeded"
    assert kubectl("logs", name).stdout == "token is s3cret\n"


def test_kubectl_delete_stops_the_pod_gracefully(
    core: client.CoreV1Api, kubectl: Kubectl, name: str, tmp_path: Path
) -> None:
    marker = tmp_path / "stopped"
    script = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        f"    open({str(marker)!r}, 'w').write('SIGTERM')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    kubectl("create", "-f", "-", input=pod_manifest(name, script))
    wait_until(lambda: _phase(core, name, "Running"))
    wait_until(lambda: kubectl("logs", name, check=False).stdout == "ready\n")
    kubectl("delete", "pod", name, "--wait=true", "--timeout=60s")
    assert _gone(core, name)
    assert marker.read_text() == "SIGTERM"
    killing = [e for e in pod_events(core, name) if e["reason"] == "Killing"]
    assert killing and killing[0]["message"] == "Stopping container main"


def test_the_agent_is_the_node_and_nothing_more(
    plane: ControlPlane, kubectl: Kubectl, node_agent: AgentThread
) -> None:
    as_node = plane.node_kubeconfig(NODE)
    who = json.loads(kubectl("auth", "whoami", "-o", "json", kubeconfig=as_node).stdout)
    assert who["status"]["userInfo"]["username"] == f"system:node:{NODE}"
    assert "system:nodes" in who["status"]["userInfo"]["groups"]
    # The Node authorizer: no secrets but those of the node's own pods.
    assert (
        "no"
        in kubectl("auth", "can-i", "list", "secrets", "-A", kubeconfig=as_node, check=False).stdout
    )
    # NodeRestriction: a node may not write another node.
    other = json.dumps({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "not-me"}})
    refused = kubectl("create", "-f", "-", input=other, kubeconfig=as_node, check=False)
    assert refused.returncode != 0 and "Forbidden" in refused.stderr
    assert node_agent.agent is not None
    # The agent runs with that certificate, not the admin's.
    node_cert = plane.node_credentials(NODE)[0].read_bytes()
    assert node_agent.agent.connection.cert_file.read_bytes() == node_cert


def test_a_restarted_agent_fails_its_lost_pods_and_runs_the_new_ones(
    core: client.CoreV1Api, kubectl: Kubectl, node_agent: AgentThread, name: str
) -> None:
    kubectl("create", "-f", "-", input=pod_manifest(name, "import time; time.sleep(600)"))
    running = wait_until(lambda: _phase(core, name, "Running"))
    pid = int(running["status"]["containerStatuses"][0]["containerID"].split("//")[1])
    node_agent.stop()
    late = f"{name}-late"
    try:
        kubectl("create", "-f", "-", input=pod_manifest(late, "print('after the restart')"))
        wait_until(lambda: read_pod(core, late)["spec"].get("nodeName") == NODE)
        # The node is lost: its containers are gone with it.
        wait_until(lambda: not psutil.pid_exists(pid))
    finally:
        node_agent.start()
    lost = _finished(core, name)
    assert lost["status"]["phase"] == "Failed"
    terminated = _state(lost)["terminated"]
    assert terminated["reason"] == "ContainerStatusUnknown" and terminated["exitCode"] == 137
    assert _finished(core, late)["status"]["phase"] == "Succeeded"
    assert kubectl("logs", late).stdout == "after the restart\n"


def test_only_clients_with_a_cluster_certificate_read_logs(
    plane: ControlPlane, node_agent: AgentThread, tmp_path: Path
) -> None:
    assert node_agent.agent is not None
    url = f"https://127.0.0.1:{node_agent.agent.port}/containerLogs/{NS}/absent/main"
    anonymous = ssl.create_default_context(cafile=str(plane.ca_file))
    with pytest.raises(httpx.TransportError):
        httpx.get(url, verify=anonymous).raise_for_status()
    cert, key = plane.node_credentials(NODE)
    context = ssl.create_default_context(cafile=str(plane.ca_file))
    context.load_cert_chain(str(cert), str(key))
    answer = httpx.get(url, verify=context)
    assert answer.status_code == 404 and answer.text == 'pod "absent" not found'


def test_the_agent_process_registers_its_node_and_stops_on_sigterm(
    plane: ControlPlane, kubectl: Kubectl, tmp_path: Path
) -> None:
    node = "podtask-cli"
    cert, key = plane.node_serving_cert(node)
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "podtask_devcluster.node_agent",
            "--kubeconfig",
            str(plane.node_kubeconfig(node)),
            "--serving-cert",
            str(cert),
            "--serving-key",
            str(key),
            "--node-name",
            node,
            "--state-dir",
            str(tmp_path / "agent"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert agent.stdout is not None
        assert agent.stdout.readline().startswith(f"node {node} ready")
        wait_until(lambda: kubectl("get", "node", node, check=False).returncode == 0)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0
    finally:
        agent.kill()
        # No pod of the other tests may be scheduled on a node that is gone.
        kubectl("delete", "node", node, check=False)
