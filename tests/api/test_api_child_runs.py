"""A task's attempt token on the public endpoints: the runs it triggers are its children,
and it may read those and no others."""

from __future__ import annotations

import time

from api_fixtures import RUNNER_SECRET, assert_error, attempt_token, bearer, settings_for
from fastapi.testclient import TestClient

from podtask._contract.wire import LABEL_PARENT_RUN
from podtask._control.attempt_tokens import sign_attempt_token
from podtask_api.app import create_app
from tests.embedded_kube import EmbeddedKube, KubeNamespace

TRIGGER = "/api/v1/tasks/hello-world/trigger"


def _parent(client: TestClient) -> str:
    response = client.post(TRIGGER, json={"payload": "parent"})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


def test_a_run_triggered_with_an_attempt_token_is_its_runs_child(
    client: TestClient, namespace: KubeNamespace
) -> None:
    parent = _parent(client)
    # Attempt 2 executes.
    namespace.set_run_status(parent, {"phase": "Executing", "attempt": 2})
    as_parent = bearer(attempt_token(parent, 2))
    response = client.post(TRIGGER, json={"payload": "child"}, headers=as_parent)
    assert response.status_code == 201, response.text
    child = response.json()["id"]
    assert namespace.run(child)["spec"]["parentRunId"] == parent

    view = client.get(f"/api/v1/runs/{child}", headers=as_parent)
    assert view.status_code == 200, view.text
    assert view.json()["parentRunId"] == parent
    # The API key reads it too, and sees the parent.
    assert client.get(f"/api/v1/runs/{child}").json()["parentRunId"] == parent
    assert client.get(f"/api/v1/runs/{parent}").json()["parentRunId"] is None


def test_a_batch_triggered_with_an_attempt_token_is_all_children(
    client: TestClient, namespace: KubeNamespace
) -> None:
    parent = _parent(client)
    items = [{"task": "hello-world", "payload": n} for n in range(3)]
    response = client.post(
        "/api/v1/tasks/batch", json={"items": items}, headers=bearer(attempt_token(parent))
    )
    assert response.status_code == 201, response.text
    for run in response.json()["runs"]:
        assert namespace.run(run["id"])["spec"]["parentRunId"] == parent


def test_an_attempt_token_reads_only_its_runs_children(client: TestClient) -> None:
    parent = _parent(client)
    stranger = _parent(client)
    as_parent = bearer(attempt_token(parent))
    error = assert_error(
        client.get(f"/api/v1/runs/{stranger}", headers=as_parent), 403, "forbidden"
    )
    assert parent in error["message"] and stranger in error["message"]
    # Not even its own run: it is no child of itself.
    assert_error(client.get(f"/api/v1/runs/{parent}", headers=as_parent), 403, "forbidden")
    assert_error(client.get("/api/v1/runs/run-missing", headers=as_parent), 404, "run_not_found")


def test_an_expired_or_forged_attempt_token_is_401(
    client: TestClient, namespace: KubeNamespace
) -> None:
    parent = _parent(client)
    expired = sign_attempt_token(
        RUNNER_SECRET.encode(), parent, 1, ttl_seconds=1, now=time.time() - 60
    )
    forged = sign_attempt_token(b"not-the-secret", parent, 1, ttl_seconds=60)
    for token, reason in ((expired, "expired"), (forged, "signature")):
        error = assert_error(
            client.post(TRIGGER, json={}, headers=bearer(token)), 401, "unauthorized"
        )
        assert reason in error["message"]
        assert_error(
            client.get(f"/api/v1/runs/{parent}", headers=bearer(token)), 401, "unauthorized"
        )
    assert namespace.run_names() == [parent]


def test_where_keys_are_optional_an_attempt_token_still_makes_children(
    embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    settings = settings_for(embedded_kube, namespace, dev_mode=True, api_key_hashes="")
    with TestClient(create_app(settings)) as open_api:
        parent = open_api.post(TRIGGER, json={}).json()["id"]
        child = open_api.post(TRIGGER, json={}, headers=bearer(attempt_token(parent))).json()
        assert namespace.run(child["id"])["spec"]["parentRunId"] == parent
        expired = attempt_token(parent, ttl=-5)
        assert_error(open_api.post(TRIGGER, json={}, headers=bearer(expired)), 401, "unauthorized")


def test_a_runs_children_are_listed_by_its_id(client: TestClient, namespace: KubeNamespace) -> None:
    parent = _parent(client)
    other = _parent(client)
    items = [{"task": "hello-world", "payload": n} for n in range(3)]
    batch = client.post(
        "/api/v1/tasks/batch", json={"items": items}, headers=bearer(attempt_token(parent))
    )
    assert batch.status_code == 201, batch.text
    single = client.post(TRIGGER, json={}, headers=bearer(attempt_token(parent)))
    children = {run["id"] for run in batch.json()["runs"]} | {single.json()["id"]}
    client.post(TRIGGER, json={}, headers=bearer(attempt_token(other)))
    for name in children:
        assert namespace.run(name)["metadata"]["labels"][LABEL_PARENT_RUN] == parent

    listed = client.get("/api/v1/runs", params={"parentRunId": parent})
    assert listed.status_code == 200, listed.text
    assert {run["id"] for run in listed.json()["data"]} == children
    assert client.get("/api/v1/runs", params={"parentRunId": child_of_none()}).json() == {
        "data": [],
        "nextCursor": None,
    }
    # Not a run id: the filter says what it takes.
    bad = client.get("/api/v1/runs", params={"parentRunId": "no/way"})
    error = assert_error(bad, 422, "invalid_request")
    assert "parentRunId" in error["message"]


def child_of_none() -> str:
    return "run-0000000000000000"
