"""Extra admission plugins: with OwnerReferencesPermissionEnforcement (OpenShift enables it),
setting `blockOwnerDeletion` needs `update` on the owner's `finalizers` subresource."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from podtask_devcluster.control_plane import ControlPlane
from tests.control_plane.control_plane_testing import kubectl, kubectl_json, new_namespace
from tests.e2e.conftest import wait_until


@pytest.fixture(scope="module")
def enforcing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    state = tmp_path_factory.mktemp("enforcing-control-plane")
    with ControlPlane(
        state / "state", admission_plugins=["OwnerReferencesPermissionEnforcement"]
    ) as control_plane:
        yield control_plane


def dependent_of(owner_uid: str, namespace: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "dependent",
                "namespace": namespace,
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "owner",
                        "uid": owner_uid,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
        }
    )


def can(kubeconfig: Path, verb: str, resource: str, *flags: str) -> bool:
    asked = kubectl(kubeconfig, "auth", "can-i", verb, resource, *flags, check=False)
    return asked.stdout.strip() == "yes"


def test_block_owner_deletion_needs_update_on_the_owners_finalizers(
    enforcing: ControlPlane, tmp_path: Path
) -> None:
    admin = enforcing.kubeconfig
    namespace = new_namespace(enforcing, "owners")
    kubectl(admin, "create", "serviceaccount", "writer", "-n", namespace)
    kubectl(
        admin,
        "create",
        "role",
        "write",
        "--verb=get,create",
        "--resource=configmaps",
        "-n",
        namespace,
    )
    kubectl(
        admin,
        "create",
        "rolebinding",
        "writer-writes",
        "--role=write",
        f"--serviceaccount={namespace}:writer",
        "-n",
        namespace,
    )
    kubectl(admin, "create", "configmap", "owner", "-n", namespace)
    owner_uid = kubectl_json(admin, "get", "configmap", "owner", "-n", namespace)["metadata"]["uid"]
    as_writer = enforcing.kubeconfig_for_token(
        enforcing.service_account_token(namespace, "writer"), tmp_path / "writer", namespace
    )

    wait_until(lambda: can(as_writer, "create", "configmaps"))  # RBAC's cache has the Role

    refused = kubectl(
        as_writer, "create", "-f", "-", input=dependent_of(owner_uid, namespace), check=False
    )
    assert refused.returncode != 0
    assert "cannot set blockOwnerDeletion" in refused.stderr, refused.stderr

    kubectl(
        admin,
        "create",
        "role",
        "finalize",
        "--verb=update",
        "--resource=configmaps/finalizers",
        "-n",
        namespace,
    )
    kubectl(
        admin,
        "create",
        "rolebinding",
        "writer-finalizes",
        "--role=finalize",
        f"--serviceaccount={namespace}:writer",
        "-n",
        namespace,
    )
    wait_until(lambda: can(as_writer, "update", "configmaps", "--subresource=finalizers"))
    kubectl(as_writer, "create", "-f", "-", input=dependent_of(owner_uid, namespace))
