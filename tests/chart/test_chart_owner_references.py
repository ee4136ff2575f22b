"""The chart's RBAC under the OwnerReferencesPermissionEnforcement admission plugin (OpenShift
enables it), on a real kube-apiserver that has it on.

With it, setting `blockOwnerDeletion: true` on an owner reference needs `update` on the
owner's `finalizers` subresource. The operator creates each attempt's pod and token Secret
owned by their TaskRun that way: with the chart's operator Role both are created; without
its `taskruns/finalizers` rule both are refused. The API owns a batch's runs by the batch's
marker ConfigMap without blockOwnerDeletion, which needs no such rule."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from podtask._contract.batch_markers import new_marker, owner_reference, read_marker
from podtask._contract.resources import TaskRunSpec
from podtask._contract.wire import API_VERSION, GROUP, VERSION
from podtask_devcluster.control_plane import ControlPlane
from podtask_operator.pods import pod_for_attempt, token_secret_for_attempt
from podtask_operator.settings import OperatorSettings
from tests.chart.chart import render
from tests.control_plane.control_plane_testing import kubectl
from tests.e2e.conftest import wait_until
from tests.real_crds import install_crds, new_namespace

PLUGIN = "OwnerReferencesPermissionEnforcement"
FINALIZERS_RULE = {
    "apiGroups": ["podtask.dev"],
    "resources": ["taskruns/finalizers"],
    "verbs": ["update"],
}
SPEC = {
    "taskId": "hello-world",
    "version": "v1",
    "image": "registry.example/tasks:v1",
    "module": "tasks.hello",
    "machine": "micro",
    "queue": {"name": "emails"},
}


@pytest.fixture(scope="module")
def enforcing_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    state = tmp_path_factory.mktemp("owner-references") / "state"
    with ControlPlane(state, admission_plugins=[PLUGIN]) as control_plane:
        install_crds(control_plane)
        yield control_plane


def _install_chart_rbac(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> None:
    """The chart's ServiceAccounts, Roles and RoleBindings, rendered for `namespace`."""
    rendered = render(namespace=namespace)
    kinds = {"ServiceAccount", "Role", "RoleBinding"}
    objects = [obj for obj in rendered.objects if obj["kind"] in kinds]
    manifest = tmp_path / "rbac.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    kubectl(control_plane.kubeconfig, "apply", "-f", str(manifest))


def _as(control_plane: ControlPlane, namespace: str, account: str) -> httpx.Client:
    token = control_plane.service_account_token(namespace, account, seconds=600)
    return httpx.Client(
        base_url=control_plane.url,
        verify=ssl.create_default_context(cafile=str(control_plane.ca_file)),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def _create_run(control_plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    body = {
        "apiVersion": API_VERSION,
        "kind": "TaskRun",
        "metadata": {"name": name},
        "spec": SPEC,
    }
    created = control_plane.client().post(
        f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/taskruns", json=body
    )
    assert created.status_code == 201, created.text
    run: dict[str, Any] = created.json()
    return run


def _attempt_objects(run: dict[str, Any], attempt: int) -> list[tuple[str, dict[str, Any]]]:
    settings = OperatorSettings(api_url="http://podtask-api:8080", runner_token_secret="x" * 32)
    spec = TaskRunSpec.model_validate(run["spec"])
    return [
        ("secrets", token_secret_for_attempt(run, attempt, "tok.sig")),
        ("pods", pod_for_attempt(run, spec, attempt, spec.machine, settings)),
    ]


def _post(client: httpx.Client, namespace: str, plural: str, body: Any) -> httpx.Response:
    return client.post(f"/api/v1/namespaces/{namespace}/{plural}", json=body)


def test_the_operator_role_may_create_pods_and_secrets_its_taskrun_blocks_deletion_of(
    enforcing_control_plane: ControlPlane, tmp_path: Path
) -> None:
    control_plane = enforcing_control_plane
    namespace = new_namespace(control_plane, "owners")
    _install_chart_rbac(control_plane, namespace, tmp_path)
    wait_until(
        lambda: (
            control_plane.client()
            .get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default")
            .status_code
            == 200
        ),
        timeout=60,
    )
    run = _create_run(control_plane, namespace, "run-owners")
    operator = _as(control_plane, namespace, "podtask-operator")

    for plural, body in _attempt_objects(run, 1):
        assert body["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is True
        created = _post(operator, namespace, plural, body)
        assert created.status_code == 201, (plural, created.text)

    # The same Role without the finalizers rule: the plugin refuses both.
    role_path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles/podtask-operator"
    role = control_plane.client().get(role_path).json()
    assert FINALIZERS_RULE in role["rules"]
    role["rules"] = [rule for rule in role["rules"] if rule != FINALIZERS_RULE]
    replaced = control_plane.client().put(role_path, json=role)
    assert replaced.status_code == 200, replaced.text
    for plural, body in _attempt_objects(run, 2):

        def refused(plural: str = plural, body: dict[str, Any] = body) -> bool:
            answer = _post(operator, namespace, plural, body)
            assert answer.status_code in (201, 403), answer.text
            if answer.status_code == 201:  # RBAC not updated yet: take it back and retry
                name = body["metadata"]["name"]
                control_plane.client().delete(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
                return False
            return "blockOwnerDeletion" in answer.json()["message"]

        wait_until(refused, timeout=30)


def test_the_api_role_may_own_runs_by_their_batch_marker(
    enforcing_control_plane: ControlPlane, tmp_path: Path
) -> None:
    control_plane = enforcing_control_plane
    namespace = new_namespace(control_plane, "batch-owners")
    _install_chart_rbac(control_plane, namespace, tmp_path)
    api = _as(control_plane, namespace, "podtask-api")
    marker_body = new_marker("b1", "run-b1", 1, ["hello-world"], "d" * 64, datetime.now(UTC))
    created = _post(api, namespace, "configmaps", marker_body)
    assert created.status_code == 201, created.text
    marker = read_marker(created.json())
    assert marker is not None
    owner = owner_reference(marker)
    assert not owner.get("blockOwnerDeletion")
    body = {
        "apiVersion": API_VERSION,
        "kind": "TaskRun",
        "metadata": {"name": "run-b1-0", "ownerReferences": [owner]},
        "spec": SPEC,
    }
    run = api.post(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/taskruns", json=body)
    assert run.status_code == 201, run.text
