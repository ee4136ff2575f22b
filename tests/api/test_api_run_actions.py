"""Cancel, replay and reschedule through HTTP, over the embedded Kubernetes API.

The test plays the operator: it writes the run's status where a state matters, and checks
that the API changed only the run's spec (the status is the operator's).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_fixtures import HELLO, assert_error, attempt_token, bearer, settings_for
from fastapi.testclient import TestClient

from podtask._contract.resources import FINAL_PHASES
from podtask._contract.wire import API_VERSION, LABEL_PARENT_RUN, LABEL_QUEUE, LABEL_TASK
from podtask_api.app import create_app
from podtask_api.cluster import KubernetesCluster
from podtask_api.idempotency import LABEL_IDEMPOTENCY
from tests.embedded_kube import EmbeddedKube, KubeNamespace

TRIGGER = "/api/v1/tasks/hello-world/trigger"


def _trigger(client: TestClient, body: dict[str, Any] | None = None, **kwargs: Any) -> str:
    response = client.post(TRIGGER, json=body or {"payload": {"n": 1}}, **kwargs)
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


def _parse(wire: str) -> datetime:
    return datetime.fromisoformat(wire.replace("Z", "+00:00"))


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_marks_the_spec_and_leaves_the_status_to_the_operator(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _trigger(client)
    namespace.set_run_status(run_id, {"phase": "Executing", "attempt": 1})
    before = datetime.now(UTC)
    response = client.post(f"/api/v1/runs/{run_id}/cancel")
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["id"] == run_id
    assert view["status"] == "Executing"
    requested = _parse(view["cancelRequestedAt"])
    assert before - timedelta(seconds=1) <= requested <= datetime.now(UTC)
    stored = namespace.run(run_id)
    assert _parse(stored["spec"]["cancelRequestedAt"]) == requested
    assert stored["status"] == {"phase": "Executing", "attempt": 1}

    # Again: still a 200, and the time stays that of the first request.
    again = client.post(f"/api/v1/runs/{run_id}/cancel")
    assert again.status_code == 200, again.text
    assert _parse(again.json()["cancelRequestedAt"]) == requested
    assert (
        client.get(f"/api/v1/runs/{run_id}").json()["cancelRequestedAt"]
        == (view["cancelRequestedAt"])
    )


def test_a_run_the_operator_has_not_seen_yet_can_be_canceled(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _trigger(client)
    response = client.post(f"/api/v1/runs/{run_id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "Pending"
    assert "cancelRequestedAt" in namespace.run(run_id)["spec"]


@pytest.mark.parametrize("phase", sorted(FINAL_PHASES))
def test_a_finished_run_cannot_be_canceled(
    client: TestClient, namespace: KubeNamespace, phase: str
) -> None:
    run_id = _trigger(client)
    namespace.set_run_status(run_id, {"phase": phase})
    error = assert_error(client.post(f"/api/v1/runs/{run_id}/cancel"), 409, "run_finished")
    assert phase in error["message"]
    assert error["details"] == {"id": run_id, "status": phase}
    assert "cancelRequestedAt" not in namespace.run(run_id)["spec"]


def test_cancel_of_an_unknown_run_is_404(client: TestClient) -> None:
    assert_error(client.post("/api/v1/runs/run-doesnotexist/cancel"), 404, "run_not_found")
    assert_error(client.post("/api/v1/runs/Not_A_Name/cancel"), 404, "run_not_found")


# -- replay ------------------------------------------------------------------------------------


def test_replay_is_a_new_run_with_the_old_runs_spec(
    client: TestClient, namespace: KubeNamespace
) -> None:
    parent = _trigger(client)
    options = {
        "tags": ["vip"],
        "metadata": {"user": 7},
        "priority": 4,
        "concurrencyKey": "user-7",
        "idempotencyKey": "order-1",
        "machine": "medium-1x",
        "maxAttempts": 2,
        "maxDuration": 60,
        "ttl": 600,
        "delay": 3600,
    }
    old_id = _trigger(
        client,
        {"payload": {"name": "Ada"}, "options": options},
        headers=bearer(attempt_token(parent)),
    )
    namespace.set_run_status(old_id, {"phase": "Executing", "attempt": 1})
    assert client.post(f"/api/v1/runs/{old_id}/cancel").status_code == 200
    old = namespace.run(old_id)
    assert {"idempotencyKey", "delayUntil", "parentRunId", "cancelRequestedAt"} <= set(old["spec"])

    response = client.post(f"/api/v1/runs/{old_id}/replay")
    assert response.status_code == 201, response.text
    answer = response.json()
    new_id = answer["id"]
    assert answer == {"id": new_id, "isCached": False, "taskId": "hello-world"}
    assert new_id != old_id

    new = namespace.run(new_id)
    dropped = {"idempotencyKey", "delayUntil", "parentRunId", "cancelRequestedAt", "triggeredAt"}
    kept = {k: v for k, v in old["spec"].items() if k not in dropped}
    assert new["spec"] == {**kept, "replayOf": old_id, "triggeredAt": new["spec"]["triggeredAt"]}
    assert new["spec"]["triggeredAt"] > old["spec"]["triggeredAt"]  # it queues as a new trigger
    # The same labels, less the idempotency key's (the replay does not answer for the key)
    # and the parent's (its parent did not trigger it).
    assert new["metadata"]["labels"] == {
        k: v
        for k, v in old["metadata"]["labels"].items()
        if k not in (LABEL_IDEMPOTENCY, LABEL_PARENT_RUN)
    }
    assert {LABEL_IDEMPOTENCY, LABEL_PARENT_RUN} <= set(old["metadata"]["labels"])
    assert "status" not in new  # the operator starts it afresh
    view = client.get(f"/api/v1/runs/{new_id}").json()
    assert (view["replayOf"], view["payload"], view["status"]) == (
        old_id,
        {"name": "Ada"},
        "Pending",
    )
    assert view["cancelRequestedAt"] is None and view["parentRunId"] is None

    # A replay of the replay names the run it replays, not the first one.
    again = client.post(f"/api/v1/runs/{new_id}/replay").json()["id"]
    assert namespace.run(again)["spec"]["replayOf"] == new_id


def test_replay_keeps_the_runs_snapshot_not_the_tasks_current_config(
    client: TestClient, namespace: KubeNamespace
) -> None:
    # A run of an older deployment of the task: its image, version and queue differ.
    old_task = HELLO.model_copy(
        update={"version": "20230101.1", "image": "registry.local/tasks:0"}
    ).to_wire()
    spec = {
        **old_task,
        "queue": {"name": "old-greetings", "concurrencyLimit": 1},
        "payload": [1, 2],
    }
    namespace.create_run(
        {
            "apiVersion": API_VERSION,
            "kind": "TaskRun",
            "metadata": {"name": "run-old"},
            "spec": spec,
        }
    )
    response = client.post("/api/v1/runs/run-old/replay", json={})
    assert response.status_code == 201, response.text
    new = namespace.run(response.json()["id"])
    assert new["spec"]["version"] == "20230101.1"
    assert new["spec"]["image"] == "registry.local/tasks:0"
    assert new["spec"]["queue"] == {"name": "old-greetings", "concurrencyLimit": 1}
    assert new["spec"]["payload"] == [1, 2]
    assert new["metadata"]["labels"] == {LABEL_TASK: "hello-world", LABEL_QUEUE: "old-greetings"}


def test_replay_with_a_new_payload(client: TestClient, namespace: KubeNamespace) -> None:
    old_id = _trigger(client)
    response = client.post(f"/api/v1/runs/{old_id}/replay", json={"payload": {"n": 2}})
    assert response.status_code == 201, response.text
    assert namespace.run(response.json()["id"])["spec"]["payload"] == {"n": 2}
    # An explicit null is a payload too, unlike a missing field.
    response = client.post(f"/api/v1/runs/{old_id}/replay", json={"payload": None})
    assert response.status_code == 201, response.text
    assert namespace.run(response.json()["id"])["spec"].get("payload") is None


def test_replay_checks_its_body(client: TestClient, namespace: KubeNamespace) -> None:
    old_id = _trigger(client)
    url = f"/api/v1/runs/{old_id}/replay"
    error = assert_error(
        client.post(url, json={"payload": "x" * (512 * 1024)}), 413, "payload_too_large"
    )
    assert error["details"] == {"size": 512 * 1024 + 2, "limit": 512 * 1024}
    error = assert_error(client.post(url, json={"paylod": 1}), 422, "invalid_request")
    assert [d["field"] for d in error["details"]] == ["paylod"]
    assert namespace.run_names() == [old_id]


def test_replay_of_an_unknown_run_is_404(client: TestClient, namespace: KubeNamespace) -> None:
    assert_error(client.post("/api/v1/runs/run-doesnotexist/replay"), 404, "run_not_found")
    assert namespace.run_names() == []


# -- reschedule --------------------------------------------------------------------------------


def test_reschedule_moves_a_delayed_runs_start(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _trigger(client, {"options": {"delay": 3600}})
    namespace.set_run_status(run_id, {"phase": "Delayed"})
    url = f"/api/v1/runs/{run_id}/reschedule"

    before = datetime.now(UTC)
    response = client.post(url, json={"delay": 60})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "Delayed"
    until = _parse(namespace.run(run_id)["spec"]["delayUntil"])
    assert before + timedelta(seconds=59) <= until <= datetime.now(UTC) + timedelta(seconds=61)

    response = client.post(url, json={"delay": "2031-02-03T04:05:06+01:00"})
    assert response.status_code == 200, response.text
    assert _parse(namespace.run(run_id)["spec"]["delayUntil"]) == datetime(
        2031, 2, 3, 3, 5, 6, tzinfo=UTC
    )
    # Zero: due now, so the operator queues it.
    assert client.post(url, json={"delay": 0}).status_code == 200
    assert _parse(namespace.run(run_id)["spec"]["delayUntil"]) <= datetime.now(UTC)
    assert namespace.run(run_id)["status"] == {"phase": "Delayed"}


@pytest.mark.parametrize("phase", [None, "Queued", "Executing", "Completed"])
def test_only_a_delayed_run_can_be_rescheduled(
    client: TestClient, namespace: KubeNamespace, phase: str | None
) -> None:
    run_id = _trigger(client, {"options": {"delay": 3600}})
    if phase is not None:
        namespace.set_run_status(run_id, {"phase": phase})
    delay_until = namespace.run(run_id)["spec"]["delayUntil"]
    error = assert_error(
        client.post(f"/api/v1/runs/{run_id}/reschedule", json={"delay": 5}), 409, "run_not_delayed"
    )
    assert (phase or "Pending") in error["message"]
    assert namespace.run(run_id)["spec"]["delayUntil"] == delay_until


def test_a_run_queued_while_it_is_rescheduled_is_409(
    client: TestClient, namespace: KubeNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _trigger(client, {"options": {"delay": 1}})
    namespace.set_run_status(run_id, {"phase": "Delayed"})
    delay_until = namespace.run(run_id)["spec"]["delayUntil"]
    set_delay_until = KubernetesCluster.set_delay_until

    def operator_queues_it_first(
        self: KubernetesCluster, run: dict[str, Any], when: str
    ) -> dict[str, Any]:
        # Between the API's read (Delayed) and its write, the delay passed.
        namespace.set_run_status(run_id, {"phase": "Queued"})
        return set_delay_until(self, run, when)

    monkeypatch.setattr(KubernetesCluster, "set_delay_until", operator_queues_it_first)
    response = client.post(f"/api/v1/runs/{run_id}/reschedule", json={"delay": 600})
    assert "Queued" in assert_error(response, 409, "run_not_delayed")["message"]
    assert namespace.run(run_id)["spec"]["delayUntil"] == delay_until


def test_reschedule_checks_its_body_and_the_run(client: TestClient) -> None:
    run_id = _trigger(client)
    url = f"/api/v1/runs/{run_id}/reschedule"
    for body in (
        {},
        {"delay": -1},
        {"delay": 1.5},
        {"delay": 10**20},
        {"delay": "soon"},
        {"delay": 5, "extra": 1},
    ):
        assert_error(client.post(url, json=body), 422, "invalid_request")
    missing = client.post("/api/v1/runs/run-doesnotexist/reschedule", json={"delay": 5})
    assert_error(missing, 404, "run_not_found")


# -- who may ------------------------------------------------------------------------------------


ACTIONS = [("cancel", None), ("replay", None), ("reschedule", {"delay": 5})]


@pytest.mark.parametrize(("action", "body"), ACTIONS)
def test_run_actions_need_an_api_key(
    embedded_kube: EmbeddedKube,
    namespace: KubeNamespace,
    client: TestClient,
    action: str,
    body: dict[str, Any] | None,
) -> None:
    run_id = _trigger(client, {"options": {"delay": 3600}})
    namespace.set_run_status(run_id, {"phase": "Delayed"})
    url = f"/api/v1/runs/{run_id}/{action}"
    with TestClient(create_app(settings_for(embedded_kube, namespace))) as anonymous:
        assert_error(anonymous.post(url, json=body), 401, "unauthorized")
        wrong = anonymous.post(url, json=body, headers=bearer("not-a-key"))
        assert_error(wrong, 401, "unauthorized")
    # Not even the run's own attempt token: a task manages its runs through an API key.
    assert_error(
        client.post(url, json=body, headers=bearer(attempt_token(run_id))), 403, "forbidden"
    )
    stored = namespace.run(run_id)
    assert "cancelRequestedAt" not in stored["spec"]
    assert namespace.run_names() == [run_id]


# -- the run view -------------------------------------------------------------------------------


def test_the_run_view_shows_conditions_and_the_next_attempt(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _trigger(client)
    conditions = [
        {
            "type": "Admitted",
            "status": "False",
            "reason": "QueueAtLimit",
            "message": "queue 'greetings' is at its limit 2/2, position 7",
            "lastTransitionTime": "2024-05-01T12:00:00Z",
        }
    ]
    namespace.set_run_status(
        run_id,
        {
            "phase": "WaitingToRetry",
            "attempt": 1,
            "nextAttemptAt": "2024-05-01T12:00:05+00:00",
            "conditions": conditions,
        },
    )
    view = client.get(f"/api/v1/runs/{run_id}").json()
    assert view["conditions"] == conditions
    assert view["nextAttemptAt"] == "2024-05-01T12:00:05Z"
    assert view["replayOf"] is None and view["cancelRequestedAt"] is None
