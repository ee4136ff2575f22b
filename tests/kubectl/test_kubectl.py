"""Real kubectl against each cluster: apply, get (printer columns, -o yaml, -w), patch,
logs, delete."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.e2e.conftest import wait_until
from tests.kubectl.conftest import KUBECTL, Kubectl

CRD_GROUP = "example.dev"


@pytest.fixture
def name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    del what  # named for the reader; wait_until names the check that timed out
    return wait_until(check, timeout)


GIZMO_CRD = f"""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.{CRD_GROUP}
spec:
  group: {CRD_GROUP}
  scope: Namespaced
  names: {{plural: gizmos, singular: gizmo, kind: Gizmo, shortNames: [gz], categories: [all]}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {{status: {{}}}}
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
    additionalPrinterColumns:
    - {{name: Color, type: string, jsonPath: .spec.color}}
    - {{name: Phase, type: string, jsonPath: .status.phase}}
    - {{name: Age, type: date, jsonPath: .metadata.creationTimestamp}}
"""


def _gizmo(name: str, color: str) -> str:
    return (
        f"apiVersion: {CRD_GROUP}/v1\nkind: Gizmo\nmetadata:\n  name: {name}\n"
        f"spec:\n  color: {color}\n"
    )


def _ensure_gizmos(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=GIZMO_CRD)
    kubectl("wait", "--for", "condition=established", f"crd/gizmos.{CRD_GROUP}", "--timeout=60s")


def test_apply_get_patch_delete_custom_resource(kubectl: Kubectl, name: str) -> None:
    _ensure_gizmos(kubectl)
    assert "created" in kubectl("apply", "-f", "-", input=_gizmo(name, "red")).stdout
    table = kubectl("get", "gizmos").stdout.splitlines()
    assert table[0].split() == ["NAME", "COLOR", "PHASE", "AGE"]
    row = next(line.split() for line in table[1:] if line.startswith(name))
    # A missing value is a null cell, which kubectl prints as blank, as with the real server.
    assert row[:2] == [name, "red"] and row[-1].endswith("s") and len(row) == 3

    assert "configured" in kubectl("apply", "-f", "-", input=_gizmo(name, "blue")).stdout
    kubectl("patch", "gz", name, "--type", "merge", "-p", '{"spec":{"extra":1}}')
    document = yaml.safe_load(kubectl("get", "gizmo", name, "-o", "yaml").stdout)
    assert document["kind"] == "Gizmo" and document["apiVersion"] == f"{CRD_GROUP}/v1"
    assert document["spec"] == {"color": "blue", "extra": 1}
    assert document["metadata"]["generation"] == 3
    assert "kubectl.kubernetes.io/last-applied-configuration" in document["metadata"]["annotations"]

    assert name in kubectl("get", "all").stdout  # the "all" category includes gizmos
    kubectl("delete", "gizmo", name)
    missing = kubectl("get", "gizmo", name, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_get_watch_prints_a_line_per_change(
    kubectl: Kubectl, kubeconfig: Path, api: client.ApiClient, name: str
) -> None:
    _ensure_gizmos(kubectl)
    kubectl("apply", "-f", "-", input=_gizmo(name, "green"))
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    process = subprocess.Popen(
        [KUBECTL, "get", "gizmos", "-w", "--field-selector", f"metadata.name={name}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: len(lines) >= 2, what="kubectl get -w to print the current state")
        objects = client.CustomObjectsApi(api)
        for phase in ("Building", "Ready"):
            objects.patch_namespaced_custom_object_status(
                CRD_GROUP, "v1", "default", "gizmos", name, {"status": {"phase": phase}}
            )
            time.sleep(0.05)
        wait_for(lambda: len(lines) >= 4, what="kubectl get -w to print two changes")
    finally:
        process.terminate()
        process.wait(5)
    assert lines[0].split() == ["NAME", "COLOR", "PHASE", "AGE"]
    assert sum(1 for line in lines if line.startswith("NAME")) == 1
    assert [line.split()[:3] for line in lines[1:4]] == [
        [name, "green", lines[1].split()[2]],
        [name, "green", "Building"],
        [name, "green", "Ready"],
    ]


def test_pods_logs_and_delete(kubectl: Kubectl, name: str) -> None:
    kubectl(
        "run",
        name,
        "--image=python:3.11",
        "--restart=Never",
        "--command",
        "--",
        "python",
        "-c",
        "print('from kubectl')",
    )

    def completed() -> str | None:
        out = kubectl("get", "pod", name, "--no-headers").stdout.split()
        return out[2] if out and out[2] == "Completed" else None

    wait_for(completed, what="pod completed")
    wide = kubectl("get", "pods", name, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert wide[1].split()[:3] == [name, "0/1", "Completed"]
    node = kubectl("get", "pod", name, "-o", "jsonpath={.spec.nodeName}").stdout
    assert node and wide[1].split()[5:7] == ["127.0.0.1", node]
    assert kubectl("logs", name).stdout == "from kubectl\n"
    kubectl("delete", "pod", name)
    assert kubectl("get", "pod", name, check=False).returncode != 0


def test_describe_and_namespaces(kubectl: Kubectl) -> None:
    names = kubectl("get", "ns", "-o", "name").stdout.split()
    assert {"namespace/default", "namespace/kube-system", "namespace/kube-public"} <= set(names)
    kubectl("create", "namespace", "scratch-ns")
    kubectl("create", "configmap", "in-scratch", "-n", "scratch-ns", "--from-literal=a=b")
    data: dict[str, Any] = yaml.safe_load(
        kubectl("get", "cm", "in-scratch", "-n", "scratch-ns", "-o", "yaml").stdout
    )
    assert data["data"] == {"a": "b"}
    kubectl("delete", "namespace", "scratch-ns")
    assert kubectl("get", "cm", "-n", "scratch-ns", "-o", "name").stdout == ""
