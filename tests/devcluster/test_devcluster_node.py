"""The embedded cluster's node is the node agent, and the server does for it what
kube-apiserver and kube-scheduler do: a Node with this machine's capacity and its Lease, pods
bound by default-scheduler (or left Pending, PodScheduled=False, while no Node can take
them), graceful deletion finished by the kubelet, `pods/log` proxied to the kubelet, resource
quantities stored canonical."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import psutil
import pytest
from devcluster_testing import wait_for
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from podtask_devcluster import EmbeddedCluster

NS = "default"
NODE = "podtask-dev"


def _pod(name: str, script: str = "print('hi')", **container: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "main", "image": "x", "command": ["python", "-c", script], **container}
            ],
        },
    }


def _condition(pod: client.V1Pod, kind: str) -> client.V1PodCondition | None:
    return next((c for c in pod.status.conditions or [] if c.type == kind), None)


def _events(core: client.CoreV1Api, uid: str) -> list[client.CoreV1Event]:
    return list(core.list_namespaced_event(NS, field_selector=f"involvedObject.uid={uid}").items)


def test_the_node_has_this_machines_capacity_and_renews_its_lease(
    api: client.ApiClient,
) -> None:
    core = client.CoreV1Api(api)
    node = core.read_node(NODE)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert node.status.capacity["cpu"] == str(cpus)
    memory = node.status.allocatable["memory"]
    assert memory.endswith("Ki") and int(memory[:-2]) * 1024 == psutil.virtual_memory().total
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("True", "KubeletReady")
    assert node.status.daemon_endpoints.kubelet_endpoint.port > 0
    lease = client.CoordinationV1Api(api).read_namespaced_lease(NODE, "kube-node-lease")
    assert lease.spec.holder_identity == NODE
    assert lease.metadata.owner_references[0].uid == node.metadata.uid


def test_a_pod_is_bound_by_the_scheduler_and_started_by_the_node(
    api: client.ApiClient, name: str
) -> None:
    core = client.CoreV1Api(api)
    created = core.create_namespaced_pod(NS, _pod(name))
    assert not created.spec.node_name  # bound after creation, by the scheduler
    pod = wait_for(
        lambda: (p := core.read_namespaced_pod(name, NS)).status.phase == "Succeeded" and p,
        what="pod succeeded",
    )
    assert pod.spec.node_name == NODE
    scheduled = _condition(pod, "PodScheduled")
    assert scheduled is not None and scheduled.status == "True"

    def by_reason() -> dict[str, client.CoreV1Event] | None:
        found = {e.reason: e for e in _events(core, pod.metadata.uid)}
        return found if {"Scheduled", "Started"} <= set(found) else None

    reasons = wait_for(by_reason, what="Scheduled and Started events")
    assert reasons["Scheduled"].message == f"Successfully assigned {NS}/{name} to {NODE}"
    assert reasons["Scheduled"].reporting_component == "default-scheduler"
    assert reasons["Started"].source.component == "kubelet"


def test_binding_a_bound_pod_is_a_conflict(api: client.ApiClient, name: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(NS, _pod(name))
    wait_for(lambda: core.read_namespaced_pod(name, NS).spec.node_name, what="pod bound")
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "elsewhere"},
    }
    with pytest.raises(ApiException) as conflict:
        core.create_namespaced_pod_binding(name, NS, binding, _preload_content=False)
    assert int(conflict.value.status) == 409
    assert f'is already assigned to node "{NODE}"' in json.loads(conflict.value.body)["message"]


def test_quantities_are_stored_canonical_and_bad_ones_refused(
    api: client.ApiClient, name: str
) -> None:
    core = client.CoreV1Api(api)
    resources = {
        "limits": {"cpu": "4000m", "memory": "8192Mi"},
        "requests": {"cpu": "375m", "memory": "1536Mi"},
    }
    created = core.create_namespaced_pod(NS, _pod(name, resources=resources))
    stored = created.spec.containers[0].resources
    assert stored.limits == {"cpu": "4", "memory": "8Gi"}
    assert stored.requests == {"cpu": "375m", "memory": "1536Mi"}
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(
            NS, _pod(f"{name}-bad", resources={"limits": {"memory": "lots"}})
        )
    assert int(refused.value.status) == 400 and "quantities must match" in refused.value.body


def test_logs_pass_timestamps_and_tail_to_the_kubelet_and_outlive_the_process(
    api: client.ApiClient, kubectl: Callable[..., subprocess.CompletedProcess[str]], name: str
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(NS, _pod(name, "print('one'); print('two')"))
    wait_for(
        lambda: core.read_namespaced_pod(name, NS).status.phase == "Succeeded",
        what="pod succeeded",
    )
    stamped = kubectl("logs", name, "--timestamps", "--tail=1").stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z two\n", stamped), stamped
    assert kubectl("logs", name, "--limit-bytes=2").stdout == "on"
    assert kubectl("logs", name, "--since=1h").stdout == "one\ntwo\n"
    previous = kubectl("logs", name, "--previous", check=False)
    assert previous.returncode != 0 and "previous terminated container" in previous.stderr


# ------------------------------------------------------------ a cluster without its node


@pytest.fixture(scope="module")
def nodeless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[client.ApiClient]:
    state = tmp_path_factory.mktemp("nodeless")
    with EmbeddedCluster(state / "state", workdir=state, node=False) as cluster:
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
        yield api
        api.close()


def _ready_node(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        },
    }


def test_without_a_node_pods_stay_pending_unschedulable_until_one_is_ready(
    nodeless: client.ApiClient, name: str
) -> None:
    core = client.CoreV1Api(nodeless)
    core.create_namespaced_pod(NS, _pod(name))

    def unschedulable() -> client.V1PodCondition | None:
        condition = _condition(core.read_namespaced_pod(name, NS), "PodScheduled")
        return condition if condition is not None and condition.status == "False" else None

    condition = wait_for(unschedulable, what="PodScheduled=False")
    assert (condition.reason, condition.message) == (
        "Unschedulable",
        "no nodes available to schedule pods",
    )
    uid = core.read_namespaced_pod(name, NS).metadata.uid
    failed = wait_for(
        lambda: [e for e in _events(core, uid) if e.reason == "FailedScheduling"],
        what="FailedScheduling event",
    )
    assert failed[0].type == "Warning"
    pod = core.read_namespaced_pod(name, NS)
    assert (pod.status.phase, pod.spec.node_name) == ("Pending", None)

    node = f"{name}-node"
    core.create_node(_ready_node(node))
    bound = wait_for(
        lambda: (p := core.read_namespaced_pod(name, NS)).spec.node_name and p,
        what="pod bound once a Node is Ready",
    )
    assert bound.spec.node_name == node
    scheduled = _condition(bound, "PodScheduled")
    assert scheduled is not None and scheduled.status == "True"
    core.delete_namespaced_pod(name, NS, grace_period_seconds=0)
    core.delete_node(node)


def test_graceful_deletion_waits_for_the_kubelet_as_kube_apiserver_does(
    nodeless: client.ApiClient, name: str
) -> None:
    core = client.CoreV1Api(nodeless)
    # Never bound: gone at once, whatever its grace period.
    core.create_namespaced_pod(NS, _pod(f"{name}-unbound"))
    core.delete_namespaced_pod(f"{name}-unbound", NS)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod(f"{name}-unbound", NS)
    assert int(gone.value.status) == 404

    node = f"{name}-node"
    core.create_node(_ready_node(node))
    core.create_namespaced_pod(NS, _pod(name))
    wait_for(lambda: core.read_namespaced_pod(name, NS).spec.node_name, what="pod bound")
    # Bound and not finished: the apiserver sets the deadline; no kubelet runs it, so it stays.
    deleted = core.delete_namespaced_pod(name, NS)
    assert deleted.metadata.deletion_grace_period_seconds == 30
    assert deleted.metadata.deletion_timestamp is not None
    # A longer grace changes nothing; a shorter one shortens it.
    core.delete_namespaced_pod(name, NS, grace_period_seconds=60)
    assert core.read_namespaced_pod(name, NS).metadata.deletion_grace_period_seconds == 30
    core.delete_namespaced_pod(name, NS, grace_period_seconds=10)
    assert core.read_namespaced_pod(name, NS).metadata.deletion_grace_period_seconds == 10
    # What a kubelet does once the containers are stopped: delete with grace 0.
    core.delete_namespaced_pod(name, NS, grace_period_seconds=0)
    with pytest.raises(ApiException) as removed:
        core.read_namespaced_pod(name, NS)
    assert int(removed.value.status) == 404

    # Finished on its node: gone at once.
    core.create_namespaced_pod(NS, _pod(f"{name}-done"))
    wait_for(lambda: core.read_namespaced_pod(f"{name}-done", NS).spec.node_name, what="pod bound")
    core.patch_namespaced_pod_status(f"{name}-done", NS, {"status": {"phase": "Succeeded"}})
    core.delete_namespaced_pod(f"{name}-done", NS)
    with pytest.raises(ApiException) as finished:
        core.read_namespaced_pod(f"{name}-done", NS)
    assert int(finished.value.status) == 404
    core.delete_node(node)


def test_kubectl_get_nodes_shows_it_ready(
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    header, row = kubectl("get", "nodes", "-o", "wide").stdout.splitlines()
    assert header.split()[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert row.split()[:3] == [NODE, "Ready", "<none>"]
    assert row.split()[5] == "127.0.0.1"


def test_the_nodes_own_requests_are_not_counted_as_clients(
    cluster: EmbeddedCluster, api: client.ApiClient, name: str
) -> None:
    before = cluster.request_counts()
    client.CoreV1Api(api).create_namespaced_pod(NS, _pod(name))

    def finished() -> bool:
        pods = cluster.objects("pods", namespace=NS)
        return any(
            p["metadata"]["name"] == name and p["status"].get("phase") == "Succeeded" for p in pods
        )

    wait_for(finished, what="pod succeeded")  # read from the store: no request
    after = cluster.request_counts()
    # The node wrote the pod's status and posted Events meanwhile; only our create counts.
    changed = {verb: after[verb] - before[verb] for verb in after if after[verb] != before[verb]}
    assert changed == {"create": 1}
