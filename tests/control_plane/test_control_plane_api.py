"""The real control plane as clients see it: its version, admin access, authentication,
RBAC on ServiceAccount tokens, and the Node authorizer on a node's certificate."""

from __future__ import annotations

import ssl
import stat
import uuid
from pathlib import Path

import httpx

from podtask_devcluster.control_plane import ControlPlane
from tests.control_plane.control_plane_testing import kubectl, kubectl_json, new_namespace
from tests.e2e.conftest import wait_until


def test_version_is_the_pinned_kubernetes(real_control_plane: ControlPlane) -> None:
    shown = kubectl_json(real_control_plane.kubeconfig, "version")
    assert shown["serverVersion"]["gitVersion"] == "v1.37.2"
    raw = kubectl(real_control_plane.kubeconfig, "get", "--raw", "/version").stdout
    assert '"gitVersion": "v1.37.2"' in raw
    assert real_control_plane.version == "v1.37.2"


def test_admin_kubeconfig_lists_the_system_namespaces(real_control_plane: ControlPlane) -> None:
    listed = kubectl_json(real_control_plane.kubeconfig, "get", "namespaces")
    names = {item["metadata"]["name"] for item in listed["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


def test_anonymous_requests_are_refused(real_control_plane: ControlPlane) -> None:
    trusting_the_ca = ssl.create_default_context(cafile=str(real_control_plane.ca_file))
    with httpx.Client(base_url=real_control_plane.url, verify=trusting_the_ca) as anonymous:
        refused = anonymous.get("/api/v1/namespaces")
        assert refused.status_code in (401, 403), refused.text
        assert "system:anonymous" in refused.text or refused.status_code == 401
        # What RBAC lets anyone read stays readable (the public-info-viewer role).
        assert anonymous.get("/version").status_code == 200


def test_service_account_token_is_subject_to_rbac(
    real_control_plane: ControlPlane, tmp_path: Path
) -> None:
    namespace = new_namespace(real_control_plane, f"sa-{uuid.uuid4().hex[:8]}")
    admin = real_control_plane.kubeconfig
    kubectl(admin, "create", "serviceaccount", "reader", "-n", namespace)
    token = real_control_plane.service_account_token(namespace, "reader", seconds=600)
    as_reader = real_control_plane.kubeconfig_for_token(
        token, tmp_path / "reader.kubeconfig", namespace
    )

    who = kubectl_json(as_reader, "auth", "whoami")
    assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:reader"
    refused = kubectl(as_reader, "get", "configmaps", check=False)
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower(), refused.stderr

    kubectl(
        admin,
        "create",
        "role",
        "read-configmaps",
        "--verb=get,list",
        "--resource=configmaps",
        "-n",
        namespace,
    )
    kubectl(
        admin,
        "create",
        "rolebinding",
        "reader-reads-configmaps",
        "--role=read-configmaps",
        f"--serviceaccount={namespace}:reader",
        "-n",
        namespace,
    )
    wait_until(lambda: kubectl(as_reader, "get", "configmaps", check=False).returncode == 0)
    # Only what the Role grants: writing is still refused.
    still_refused = kubectl(as_reader, "create", "configmap", "nope", check=False)
    assert "forbidden" in still_refused.stderr.lower(), still_refused.stderr


def test_node_certificate_is_known_as_its_node(real_control_plane: ControlPlane) -> None:
    node = f"node-{uuid.uuid4().hex[:8]}"
    as_node = real_control_plane.node_kubeconfig(node)
    who = kubectl_json(as_node, "auth", "whoami")
    assert who["status"]["userInfo"]["username"] == f"system:node:{node}"
    assert "system:nodes" in who["status"]["userInfo"]["groups"]
    manifest = '{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "%s"}}'
    try:
        kubectl(as_node, "create", "-f", "-", input=manifest % node)
        # NodeRestriction: a node may register itself only.
        other = kubectl(as_node, "create", "-f", "-", input=manifest % f"{node}-other", check=False)
        assert other.returncode != 0
        assert "forbidden" in other.stderr.lower(), other.stderr
    finally:
        kubectl(real_control_plane.kubeconfig, "delete", "node", node, "--ignore-not-found")


def test_keys_and_certificates_are_owner_only(real_control_plane: ControlPlane) -> None:
    real_control_plane.node_serving_cert("mode-check")
    files = [path for path in real_control_plane.pki.directory.rglob("*") if path.is_file()]
    files.append(real_control_plane.kubeconfig)
    assert len(files) > 10
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
