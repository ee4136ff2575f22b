"""An attempt token counts only while its attempt executes: once the attempt has ended
(finished, failed, retried, canceled, reported, its run deleted) every endpoint refuses it
with a 401, except the runner sending its very same report again."""

from __future__ import annotations

from typing import Any

import pytest
from api_fixtures import assert_error, attempt_token, bearer
from fastapi.testclient import TestClient
from kubernetes import client as kube_client

from podtask._contract.wire import GROUP, VERSION
from tests.embedded_kube import EmbeddedKube, KubeNamespace

TRIGGER = "/api/v1/tasks/hello-world/trigger"
REPORT = {"ok": True, "output": {"n": 1}, "error": None}


def _attempt(run_id: str, number: int) -> dict[str, Any]:
    return {"number": number, "pod": f"{run_id}-{number}", "machine": "small-1x"}


def _executing(client: TestClient, namespace: KubeNamespace, attempt: int = 1) -> str:
    """A run whose attempt `attempt` executes, as the operator records it."""
    response = client.post(TRIGGER, json={"payload": "parent"})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    namespace.set_run_status(
        run_id,
        {
            "phase": "Executing",
            "attempt": attempt,
            "attempts": [_attempt(run_id, n) for n in range(1, attempt + 1)],
        },
    )
    return run_id


def _child(client: TestClient, token: str) -> str:
    response = client.post(TRIGGER, json={"payload": "child"}, headers=bearer(token))
    assert response.status_code == 201, response.text
    child: str = response.json()["id"]
    return child


def _every_use(
    client: TestClient, run_id: str, attempt: int, token: str, child: str
) -> dict[str, Any]:
    """The answer to each kind of request a task's token can make (one per route class)."""
    auth = bearer(token)
    runner = f"/api/v1/runner/runs/{run_id}/attempts/{attempt}"
    items = [{"task": "hello-world", "payload": n} for n in range(2)]
    return {
        "trigger": client.post(TRIGGER, json={"payload": "late"}, headers=auth),
        "batch": client.post("/api/v1/tasks/batch", json={"items": items}, headers=auth),
        "read child": client.get(f"/api/v1/runs/{child}", headers=auth),
        "list runs": client.get("/api/v1/runs", headers=auth),
        "cancel child": client.post(f"/api/v1/runs/{child}/cancel", headers=auth),
        "runner fetch": client.get(runner, headers=auth),
        "runner report": client.post(
            f"{runner}/complete", json={"ok": True, "output": "late"}, headers=auth
        ),
    }


def _assert_all_refused(answers: dict[str, Any]) -> None:
    for use, response in answers.items():
        error = assert_error(response, 401, "attempt_ended")
        assert "ended" in error["message"], (use, error)
        assert response.headers["WWW-Authenticate"] == "Bearer", use


def test_a_live_token_works_and_only_where_it_may(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _executing(client, namespace)
    token = attempt_token(run_id)
    child = _child(client, token)
    answers = _every_use(client, run_id, 1, token, child)
    statuses = {use: response.status_code for use, response in answers.items()}
    assert statuses == {
        "trigger": 201,
        "batch": 201,
        "read child": 200,
        "list runs": 403,
        "cancel child": 403,
        "runner fetch": 200,
        "runner report": 204,
    }


ENDED = {
    "completed": {"phase": "Completed"},
    "failed": {"phase": "Failed"},
    "waiting to retry": {"phase": "WaitingToRetry"},
    "queued for its retry": {"phase": "Queued"},
    "retried to attempt 2": {"phase": "Executing", "attempt": 2},
    "canceled": {"phase": "Canceled"},
}


@pytest.mark.parametrize("ended", list(ENDED))
def test_the_token_of_an_ended_attempt_is_refused_everywhere(
    client: TestClient, namespace: KubeNamespace, ended: str
) -> None:
    run_id = _executing(client, namespace)
    token = attempt_token(run_id)
    child = _child(client, token)
    namespace.set_run_status(run_id, ENDED[ended])
    before = namespace.run_names()

    _assert_all_refused(_every_use(client, run_id, 1, token, child))
    assert namespace.run_names() == before
    assert "report" not in namespace.run(run_id)["status"]
    assert "cancelRequestedAt" not in namespace.run(child)["spec"]


def test_the_token_of_an_attempt_that_reported_is_refused(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _executing(client, namespace)
    token = attempt_token(run_id)
    child = _child(client, token)
    url = f"/api/v1/runner/runs/{run_id}/attempts/1/complete"
    done = client.post(url, json=REPORT, headers=bearer(token))
    assert done.status_code == 204, done.text
    before = namespace.run_names()

    # Its pod has not exited yet, but the attempt has said its last (and completed the run).
    _assert_all_refused(_every_use(client, run_id, 1, token, child))
    assert namespace.run_names() == before
    assert namespace.run(run_id)["status"]["output"] == {"n": 1}


def test_the_same_report_sent_again_is_still_accepted(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _executing(client, namespace)
    token = bearer(attempt_token(run_id))
    url = f"/api/v1/runner/runs/{run_id}/attempts/1/complete"
    assert client.post(url, json=REPORT, headers=token).status_code == 204
    reported = namespace.run(run_id)["status"]["report"]
    # The runner's retry after a connection dropped before it saw the answer.
    again = client.post(url, json=REPORT, headers=token)
    assert again.status_code == 204, again.text
    assert namespace.run(run_id)["status"]["report"] == reported
    # Another report is no retry: the attempt has ended (its report completed the run).
    other = client.post(url, json={"ok": True, "output": {"n": 2}}, headers=token)
    assert "Completed" in assert_error(other, 401, "attempt_ended")["message"]
    # The same one again, also once the run's final status is written again.
    namespace.set_run_status(run_id, {"phase": "Completed"})
    again = client.post(url, json=REPORT, headers=token)
    assert again.status_code == 204, again.text
    other = client.post(url, json={"ok": True, "output": {"n": 2}}, headers=token)
    assert_error(other, 401, "attempt_ended")
    assert namespace.run(run_id)["status"]["report"] == reported


def test_the_token_of_a_deleted_run_is_refused(
    client: TestClient, namespace: KubeNamespace, embedded_kube: EmbeddedKube
) -> None:
    run_id = _executing(client, namespace)
    token = attempt_token(run_id)
    child = _child(client, token)
    kube_client.CustomObjectsApi(embedded_kube.api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace.name, "taskruns", run_id
    )
    _assert_all_refused(_every_use(client, run_id, 1, token, child))


def test_a_token_for_the_attempt_the_operator_has_not_recorded_yet_works(
    client: TestClient, namespace: KubeNamespace
) -> None:
    # The operator creates attempt 2's pod before it records attempt 2 in the status.
    run_id = _executing(client, namespace)
    namespace.set_run_status(run_id, {"phase": "WaitingToRetry"})
    token = attempt_token(run_id, 2)
    child = _child(client, token)
    assert namespace.run(child)["spec"]["parentRunId"] == run_id
    fetched = client.get(f"/api/v1/runner/runs/{run_id}/attempts/2", headers=bearer(token))
    assert fetched.status_code == 200, fetched.text
    # Attempt 1's token is dead meanwhile.
    refused = client.post(TRIGGER, json={}, headers=bearer(attempt_token(run_id, 1)))
    assert_error(refused, 401, "attempt_ended")
