"""The controllers of the real control plane at work: the controller-manager's garbage
collector and the scheduler."""

from __future__ import annotations

import json
import uuid
from typing import Any

from podtask_devcluster.control_plane import ControlPlane
from tests.control_plane.control_plane_testing import kubectl, kubectl_json, new_namespace
from tests.e2e.conftest import wait_until


def test_garbage_collector_deletes_the_dependents_of_a_deleted_owner(
    real_control_plane: ControlPlane,
) -> None:
    admin = real_control_plane.kubeconfig
    namespace = new_namespace(real_control_plane, f"gc-{uuid.uuid4().hex[:8]}")
    kubectl(admin, "create", "configmap", "owner", "-n", namespace)
    owner_uid = kubectl_json(admin, "get", "configmap", "owner", "-n", namespace)["metadata"]["uid"]
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "namespace": namespace,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
            ],
        },
    }
    kubectl(admin, "create", "-f", "-", input=json.dumps(dependent))
    kubectl(admin, "create", "configmap", "bystander", "-n", namespace)

    kubectl(admin, "delete", "configmap", "owner", "-n", namespace, "--cascade=background")

    def remaining() -> set[str]:
        listed = kubectl_json(admin, "get", "configmaps", "-n", namespace)
        return {item["metadata"]["name"] for item in listed["items"]}

    wait_until(lambda: "dependent" not in remaining(), timeout=60)
    assert "bystander" in remaining()


def test_scheduler_leaves_a_pod_no_node_fits_pending_and_says_why(
    real_control_plane: ControlPlane,
) -> None:
    admin = real_control_plane.kubeconfig
    namespace = new_namespace(real_control_plane, f"sched-{uuid.uuid4().hex[:8]}")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nowhere", "namespace": namespace},
        "spec": {
            # No node has this label, whichever nodes other tests register.
            "nodeSelector": {"podtask.dev/test-no-such-node": "true"},
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
        },
    }
    kubectl(admin, "create", "-f", "-", input=json.dumps(pod))

    def scheduled_condition() -> dict[str, Any] | None:
        found = kubectl_json(admin, "get", "pod", "nowhere", "-n", namespace)
        for condition in found.get("status", {}).get("conditions", []):
            if condition["type"] == "PodScheduled":
                return dict(condition)
        return None

    condition = wait_until(scheduled_condition, timeout=60)
    assert condition["status"] == "False"
    assert condition["reason"] == "Unschedulable"
    assert "nodes are available" in condition["message"] or "no nodes" in condition["message"]
    found = kubectl_json(admin, "get", "pod", "nowhere", "-n", namespace)
    assert found["status"]["phase"] == "Pending"
    assert "nodeName" not in found["spec"]
