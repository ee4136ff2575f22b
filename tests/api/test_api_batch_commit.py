"""`POST /api/v1/tasks/batch` through its commit marker, over the embedded cluster: a batch
sent again with its `Idempotency-Key` answers with the same runs, one cut off half-way is
completed, and the runs of a batch not committed do not exist for users."""

from __future__ import annotations

from typing import Any

from api_fixtures import assert_error
from fastapi.testclient import TestClient
from kubernetes import client as kube_client

from podtask._contract.batch_markers import (
    LABEL_BATCH,
    BatchState,
    batch_owner,
    keyed_batch_id,
    marker_name,
    read_marker,
)
from tests.embedded_kube import EmbeddedKube, KubeNamespace

BATCH = "/api/v1/tasks/batch"


def items(count: int, **options: Any) -> list[dict[str, Any]]:
    return [{"task": "hello-world", "payload": {"n": n}, "options": options} for n in range(count)]


def marker(kube: EmbeddedKube, namespace: KubeNamespace, batch_id: str) -> dict[str, Any]:
    core = kube_client.CoreV1Api(kube.api)
    found = core.read_namespaced_config_map(marker_name(batch_id), namespace.name)
    body: dict[str, Any] = core.api_client.sanitize_for_serialization(found)
    return body


def test_the_same_key_answers_with_the_same_runs(
    client: TestClient, namespace: KubeNamespace, embedded_kube: EmbeddedKube
) -> None:
    headers = {"Idempotency-Key": "nightly-2026-01-01"}
    first = client.post(BATCH, json={"items": items(5)}, headers=headers)
    assert first.status_code == 201, first.text
    ids = [run["id"] for run in first.json()["runs"]]
    again = client.post(BATCH, json={"items": items(5)}, headers=headers)
    assert again.status_code == 200
    assert again.json()["runs"] == [{"id": i, "isCached": True} for i in ids]
    assert namespace.run_names() == sorted(ids)
    found = read_marker(
        marker(embedded_kube, namespace, keyed_batch_id(headers["Idempotency-Key"], None))
    )
    assert found is not None and found.state is BatchState.COMMITTED
    # Other items under the same key: a different batch, refused.
    other = client.post(BATCH, json={"items": items(4)}, headers=headers)
    assert_error(other, 409, "idempotency_conflict")
    assert namespace.run_names() == sorted(ids)


def test_a_batch_cut_off_before_its_commit_is_hidden_and_completed_by_its_retry(
    client: TestClient, namespace: KubeNamespace, embedded_kube: EmbeddedKube
) -> None:
    headers = {"Idempotency-Key": "cut-off"}
    done = client.post(BATCH, json={"items": items(6)}, headers=headers)
    ids = [run["id"] for run in done.json()["runs"]]
    # Make it as an API killed after 4 of its 6 creates leaves it: open, 2 runs missing.
    batch_id = keyed_batch_id("cut-off", None)
    core = kube_client.CoreV1Api(embedded_kube.api)
    core.patch_namespaced_config_map(
        marker_name(batch_id), namespace.name, {"data": {"state": "open", "runs": None}}
    )
    for name in ids[4:]:
        embedded_kube._objects.delete_namespaced_custom_object(
            "podtask.dev", "v1alpha1", namespace.name, "taskruns", name
        )
    assert client.get("/api/v1/runs").json()["data"] == []
    assert_error(client.get(f"/api/v1/runs/{ids[0]}"), 404, "run_not_found")
    assert_error(client.post(f"/api/v1/runs/{ids[0]}/cancel"), 404, "run_not_found")

    retry = client.post(BATCH, json={"items": items(6)}, headers=headers)
    assert retry.status_code == 201, retry.text
    assert [run["id"] for run in retry.json()["runs"]] == ids
    assert namespace.run_names() == sorted(ids)
    assert sorted(run["id"] for run in client.get("/api/v1/runs").json()["data"]) == sorted(ids)
    assert client.get(f"/api/v1/runs/{ids[5]}").status_code == 200


def test_every_run_of_a_batch_is_labelled_and_owned_by_its_marker(
    client: TestClient, namespace: KubeNamespace
) -> None:
    response = client.post(
        BATCH, json={"items": [*items(2), *items(1, idempotencyKey="one-of-them")]}
    )
    assert response.status_code == 201, response.text
    owners = {batch_owner(namespace.run(run["id"])) for run in response.json()["runs"]}
    assert len(owners) == 1
    owner = owners.pop()
    assert owner is not None and owner.uid
    assert all(
        namespace.run(run["id"])["metadata"]["labels"][LABEL_BATCH] == owner.batch_id
        for run in response.json()["runs"]
    )


def test_writes_per_batch(
    client: TestClient, namespace: KubeNamespace, embedded_kube: EmbeddedKube
) -> None:
    """A batch of N costs N + 2 writes: the marker's create, N run creates, the commit."""
    before = embedded_kube.cluster.request_counts()
    assert client.post(BATCH, json={"items": items(200)}).status_code == 201
    after = embedded_kube.cluster.request_counts()
    writes = {verb: after[verb] - before[verb] for verb in ("create", "patch", "delete", "update")}
    assert writes == {"create": 201, "patch": 1, "delete": 0, "update": 0}
