"""Test runs (`isTest`) and a run's metadata through the API.

A trigger (or a batch item) with `isTest` makes a test run: its spec says so, a label lets
lists select it, the run's JSON shows it, its replays are test runs too. The runner stores
the metadata its task writes with `PUT …/attempts/{n}/metadata` (the attempt's token, while
the attempt executes): the whole document replaces the one before in `status.metadata`, and
the run's JSON shows it instead of the trigger's. The test plays the operator (the run's
status) and the runner (its token)."""

from __future__ import annotations

from typing import Any

import pytest
from api_fixtures import HELLO, assert_error, attempt_token, bearer
from fastapi.testclient import TestClient

from podtask._contract.limits import MAX_RUN_METADATA_BYTES
from podtask._contract.wire import LABEL_QUEUE, LABEL_TASK, LABEL_TEST
from podtask_api.errors import ApiError
from podtask_api.run_actions import build_replay
from podtask_api.run_views import attempt_view, run_summary, run_view
from podtask_api.stored_json import check_run_metadata_size
from podtask_api.task_runs import build_task_run
from podtask_api.trigger_requests import TriggerRequest
from tests.embedded_kube import KubeNamespace

# -- pure: the TaskRun a test trigger makes, and what the views show ---------------------------


def _built(**options: Any) -> dict[str, Any]:
    request = TriggerRequest.model_validate({"payload": 1, "options": options})
    return build_task_run(HELLO, request, "run-1")


def test_a_test_trigger_makes_a_labelled_test_run_and_its_replay_is_one_too() -> None:
    test_run = _built(isTest=True, metadata={"m": 1})
    assert test_run["spec"]["isTest"] is True
    labels = {LABEL_TASK: "hello-world", LABEL_QUEUE: "greetings", LABEL_TEST: "true"}
    assert test_run["metadata"]["labels"] == labels
    replay = build_replay(test_run, "run-2")
    assert replay["spec"]["isTest"] is True and replay["metadata"]["labels"] == labels
    plain = _built()
    assert "isTest" not in plain["spec"] or plain["spec"]["isTest"] is False
    assert LABEL_TEST not in plain["metadata"]["labels"]
    assert LABEL_TEST not in build_replay(plain, "run-3")["metadata"]["labels"]
    assert run_view(test_run)["isTest"] is True and run_summary(plain)["isTest"] is False


@pytest.mark.parametrize("value", ["true", 1, None])
def test_is_test_is_a_json_boolean(value: Any) -> None:
    with pytest.raises(ValueError, match="isTest"):
        TriggerRequest.model_validate({"options": {"isTest": value}})


def test_the_metadata_shown_is_the_tasks_once_it_wrote_some() -> None:
    run = _built(metadata={"from": "trigger"})
    run["status"] = {"phase": "Executing", "attempt": 1}
    assert run_view(run)["metadata"] == {"from": "trigger"}
    assert attempt_view(run, 1)["context"]["metadata"] == {"from": "trigger"}
    run["status"]["metadata"] = {"progress": 0.5}
    assert run_view(run)["metadata"] == {"progress": 0.5}
    # The next attempt goes on from what the one before left.
    assert attempt_view(run, 2)["context"]["metadata"] == {"progress": 0.5}
    run["status"]["metadata"] = {}  # written empty: empty, not the trigger's
    assert run_view(run)["metadata"] == {}
    assert "metadata" not in run_summary(run)


def test_metadata_over_256_kib_is_a_413_that_says_so() -> None:
    check_run_metadata_size({"k": "x" * (MAX_RUN_METADATA_BYTES - 20)})
    with pytest.raises(ApiError) as refused:
        check_run_metadata_size({"k": "<" * (MAX_RUN_METADATA_BYTES // 6)})
    assert (refused.value.status, refused.value.code) == (413, "metadata_too_large")
    assert "256 KiB" in refused.value.message
    with pytest.raises(ApiError) as invalid:
        check_run_metadata_size({"n": 2**64})
    assert (invalid.value.status, invalid.value.code) == (422, "invalid_metadata")
    assert "metadata.n" in invalid.value.message


# -- through the API ----------------------------------------------------------------------------


def _trigger(client: TestClient, **options: Any) -> str:
    response = client.post("/api/v1/tasks/hello-world/trigger", json={"options": options})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


def _executing(client: TestClient, namespace: KubeNamespace, **options: Any) -> str:
    run_id = _trigger(client, **options)
    entry = {"number": 1, "pod": f"{run_id}-1", "machine": "micro"}
    namespace.set_run_status(run_id, {"phase": "Executing", "attempt": 1, "attempts": [entry]})
    return run_id


def _put(client: TestClient, run_id: str, body: Any, attempt: int = 1, **kwargs: Any) -> Any:
    return client.put(
        f"/api/v1/runner/runs/{run_id}/attempts/{attempt}/metadata",
        headers=bearer(attempt_token(run_id, attempt)),
        json=body,
        **kwargs,
    )


def test_a_test_run_through_the_api_and_its_replay(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _trigger(client, isTest=True)
    assert client.get(f"/api/v1/runs/{run_id}").json()["isTest"] is True
    assert namespace.run(run_id)["metadata"]["labels"][LABEL_TEST] == "true"
    replayed = client.post(f"/api/v1/runs/{run_id}/replay", json={})
    assert replayed.status_code == 201, replayed.text
    assert client.get(f"/api/v1/runs/{replayed.json()['id']}").json()["isTest"] is True
    plain = _trigger(client)
    assert client.get(f"/api/v1/runs/{plain}").json()["isTest"] is False
    tests = client.get("/api/v1/runs", params={"isTest": "true"}).json()["data"]
    assert {run["id"] for run in tests} == {run_id, replayed.json()["id"]}
    assert_error(_trigger_response(client, isTest="yes"), 422, "invalid_request")


def _trigger_response(client: TestClient, **options: Any) -> Any:
    return client.post("/api/v1/tasks/hello-world/trigger", json={"options": options})


def test_the_runner_stores_the_metadata_whole_and_the_run_shows_it(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _executing(client, namespace, metadata={"from": "trigger", "keep": 1})
    first = {"progress": 0.25, "items": [1, 2], "nested": {"a": 1, "b": 2}}
    assert _put(client, run_id, {"metadata": first}).status_code == 204
    assert client.get(f"/api/v1/runs/{run_id}").json()["metadata"] == first
    # Replaced, not merged: keys left out are gone, a nested one too; a null stays.
    second = {"progress": 1, "nested": {"a": 1}, "note": None}
    assert _put(client, run_id, {"metadata": second}).status_code == 204
    assert client.get(f"/api/v1/runs/{run_id}").json()["metadata"] == second
    assert namespace.run(run_id)["status"]["metadata"] == second
    assert namespace.run(run_id)["spec"]["metadata"] == {"from": "trigger", "keep": 1}
    fetched = client.get(
        f"/api/v1/runner/runs/{run_id}/attempts/1", headers=bearer(attempt_token(run_id))
    )
    assert fetched.json()["context"]["metadata"] == second


def test_bad_metadata_is_refused_with_what_to_fix(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _executing(client, namespace)
    too_large = _put(client, run_id, {"metadata": {"k": "<" * (MAX_RUN_METADATA_BYTES // 6)}})
    error = assert_error(too_large, 413, "metadata_too_large")
    assert "256 KiB" in error["message"] and error["details"]["limit"] == MAX_RUN_METADATA_BYTES
    for body in ({"metadata": [1]}, {"metadata": "x"}, {}, {"metadata": {}, "other": 1}):
        assert_error(_put(client, run_id, body), 422, "invalid_request")
    assert_error(
        _put(client, run_id, None, content=b'{"metadata": {"x": NaN}}'), 400, "invalid_json"
    )
    assert "metadata" not in namespace.run(run_id).get("status", {})


def test_only_the_attempts_own_token_while_it_executes(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _executing(client, namespace)
    other = _executing(client, namespace)
    body = {"metadata": {"a": 1}}
    url = f"/api/v1/runner/runs/{run_id}/attempts/1/metadata"
    assert_error(client.put(url, json=body), 401, "unauthorized")  # an API key is no token
    assert_error(client.put(url, json=body, headers=bearer(attempt_token(other))), 403, "forbidden")
    assert_error(_put(client, run_id, body, attempt=3), 409, "attempt_not_started")
    namespace.set_run_status(run_id, {"phase": "Waiting"})  # its pod runs on: it may write
    assert _put(client, run_id, body).status_code == 204
    namespace.set_run_status(run_id, {"phase": "Completed"})
    assert_error(_put(client, run_id, {"metadata": {"a": 2}}), 401, "attempt_ended")
    assert namespace.run(run_id)["status"]["metadata"] == {"a": 1}
