"""Every kind of object podtask creates, as its own code builds it, is valid (strict: no
unknown fields) for each supported Kubernetes version: the attempt's pod and token Secret,
the batch marker and deployment record ConfigMaps, the operator's Lease and its Events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kubernetes_validate
import pytest

from podtask._authoring.manifest import Manifest
from podtask._contract.batch_markers import new_marker
from podtask._contract.resources import TaskRunSpec
from podtask_api.deployments import deployment_record
from podtask_operator.leadership import LEASE_API_VERSION, claimed_spec, released_spec
from podtask_operator.pods import pod_for_attempt, token_secret_for_attempt
from podtask_operator.run_events import run_event
from podtask_operator.settings import OperatorSettings
from tests.kubernetes_versions import SUPPORTED_KUBERNETES_VERSIONS

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
RUN = {
    "apiVersion": "podtask.dev/v1alpha1",
    "kind": "TaskRun",
    "metadata": {"name": "run-abc123", "namespace": "tasks", "uid": "0000-1111"},
}
SPEC = TaskRunSpec.model_validate(
    {
        "taskId": "hello-world",
        "version": "v3",
        "image": "registry.example/tasks:v3",
        "module": "tasks.hello",
        "machine": "medium-1x",
        "queue": {"name": "emails", "concurrencyLimit": 3},
        "concurrencyKey": "user/42 with spaces",
    }
)


def _lease(spec: dict[str, Any]) -> dict[str, Any]:
    metadata = {"name": "podtask-operator", "namespace": "tasks"}
    return {"apiVersion": LEASE_API_VERSION, "kind": "Lease", "metadata": metadata, "spec": spec}


def _created_objects() -> dict[str, dict[str, Any]]:
    settings = OperatorSettings(api_url="http://podtask-api:8080", runner_token_secret="x" * 32)
    manifest = Manifest.model_validate(
        {
            "tasks": [
                {
                    "id": "hello-world",
                    "module": "tasks/hello.py",
                    "queue": {"name": "emails", "concurrencyLimit": 3},
                    "machine": "medium-1x",
                    "retry": {},
                }
            ],
            "queues": [{"name": "emails", "concurrencyLimit": 3}],
        }
    )
    claimed = claimed_spec(None, "operator-0", NOW, 15)
    return {
        "pod": pod_for_attempt(RUN, SPEC, 2, "medium-1x", settings),
        "token secret": token_secret_for_attempt(RUN, 2, "tok.sig"),
        "batch marker": new_marker("b1", "run-b1", 3, ["hello-world"], "d" * 64, NOW),
        "deployment record": deployment_record(
            "20240501.1", "registry.example/tasks:v3", manifest, manifest.model_dump_json(), NOW
        ),
        "lease claimed": _lease(claimed),
        "lease released": _lease(released_spec(claimed)),
        "run event": run_event(RUN, "tasks", "Warning", "Stalled", "x" * 5000, NOW),
    }


def test_kubernetes_validate_knows_every_supported_version() -> None:
    known = set(kubernetes_validate.utils.all_versions())
    assert set(SUPPORTED_KUBERNETES_VERSIONS) <= known, sorted(known)


@pytest.mark.parametrize("version", SUPPORTED_KUBERNETES_VERSIONS)
@pytest.mark.parametrize("what", sorted(_created_objects()))
def test_what_podtask_creates_is_valid(what: str, version: str) -> None:
    kubernetes_validate.validate(_created_objects()[what], version, strict=True)
