"""Stop and start with the same state directory: objects and the resourceVersion counter
survive, running pods are reported lost, and old watches get 410 Gone."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from devcluster_testing import CRD_GROUP, wait_for, widget_crd
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from podtask_devcluster import EmbeddedCluster

# Not unit (tests/tiers.py): starts and restarts embedded clusters.
pytestmark = pytest.mark.component


def _client(cluster: EmbeddedCluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cluster.kubeconfig_path))


def test_restart_keeps_state_and_marks_running_pods_lost(tmp_path: Path) -> None:
    cluster = EmbeddedCluster(tmp_path / "state", workdir=tmp_path)
    with cluster:
        api = _client(cluster)
        client.ApiextensionsV1Api(api).create_custom_resource_definition(widget_crd())
        objects = client.CustomObjectsApi(api)
        objects.create_namespaced_custom_object(
            CRD_GROUP,
            "v1",
            "default",
            "widgets",
            {
                "apiVersion": f"{CRD_GROUP}/v1",
                "kind": "Widget",
                "metadata": {"name": "kept"},
                "spec": {"size": 1},
            },
        )
        core = client.CoreV1Api(api)
        core.create_namespaced_pod(
            "default",
            {
                "metadata": {"name": "runner"},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "x", "command": ["sleep", "60"]}],
                },
            },
        )
        wait_for(
            lambda: core.read_namespaced_pod("runner", "default").status.phase == "Running",
            what="pod running",
        )
        before = int(core.list_namespaced_pod("default").metadata.resource_version)
        open_watch = urllib.request.urlopen(f"{cluster.url}/api/v1/pods?watch=true", timeout=30)
        api.close()
    assert not cluster.running
    # An open watch (no timeout) ended when the server stopped.
    assert b'"ADDED"' in open_watch.read()
    open_watch.close()

    with cluster:
        api = _client(cluster)
        core = client.CoreV1Api(api)
        # As a restarted kubelet reports containers that did not survive: the pod Failed, its
        # container terminated ContainerStatusUnknown (137), and a Warning event says why.
        wait_for(
            lambda: core.read_namespaced_pod("runner", "default").status.phase == "Failed",
            what="the lost pod failed",
        )
        pod = core.read_namespaced_pod("runner", "default")
        terminated = pod.status.container_statuses[0].state.terminated
        assert (terminated.reason, terminated.exit_code) == ("ContainerStatusUnknown", 137)
        warnings = wait_for(
            lambda: [
                event.message
                for event in core.list_namespaced_event(
                    "default", field_selector=f"involvedObject.uid={pod.metadata.uid}"
                ).items
                if event.type == "Warning" and "restarted" in event.message
            ],
            what="the node's event on the lost pod",
        )
        assert "did not survive" in warnings[0]
        kept = client.CustomObjectsApi(api).get_namespaced_custom_object(
            CRD_GROUP, "v1", "default", "widgets", "kept"
        )
        assert kept["spec"] == {"size": 1}
        after = int(core.list_namespaced_pod("default").metadata.resource_version)
        assert after > before
        with pytest.raises(ApiException) as expired:
            for _ in watch.Watch().stream(
                core.list_namespaced_pod,
                "default",
                resource_version=str(before - 1),
                timeout_seconds=2,
            ):
                pass
        assert int(expired.value.status) == 410
        api.close()


def test_command_line_entry_point(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "podtask_devcluster",
            "--state-dir",
            str(tmp_path / "s"),
            "--port",
            "0",
            "--workdir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("podtask dev cluster: http://127.0.0.1:")
        assert "kubeconfig" in process.stdout.readline()
        assert (tmp_path / "s" / "kubeconfig").read_text().count("server: http://127.0.0.1:") == 1
    finally:
        process.terminate()
        assert process.wait(60) == 0
