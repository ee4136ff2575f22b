"""A runner's waits through the API: recorded in the run's status, asked to go on, answered
`Resumed` once the operator gave the run its slot back; refused with the attempt's token once
the attempt has ended, and with a 422 that says what to fix for a bad body."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from api_fixtures import assert_error, attempt_token, bearer
from fastapi.testclient import TestClient

from podtask_api.api_models import WaitState
from podtask_api.errors import ApiError
from podtask_api.run_waits import WaitRequest, wait_state, wait_write, waiting_for
from tests.embedded_kube import KubeNamespace

TRIGGER = "/api/v1/tasks/hello-world/trigger"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _executing(client: TestClient, namespace: KubeNamespace, attempt: int = 1) -> str:
    response = client.post(TRIGGER, json={"payload": "parent"})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    attempts = [{"number": n, "pod": f"{run_id}-{n}", "machine": "small-1x"} for n in (1, 2)]
    namespace.set_run_status(
        run_id, {"phase": "Executing", "attempt": attempt, "attempts": attempts[:attempt]}
    )
    return run_id


def _wait_path(run_id: str, attempt: int = 1) -> str:
    return f"/api/v1/runner/runs/{run_id}/attempts/{attempt}/wait"


def test_a_wait_is_recorded_asked_to_end_and_resumed(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _executing(client, namespace)
    auth = bearer(attempt_token(run_id))
    child = client.post(TRIGGER, json={"payload": "child"}, headers=auth).json()["id"]

    answer = client.post(_wait_path(run_id), json={"runs": [child], "runCount": 1}, headers=auth)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"state": "Waiting"}
    wait = namespace.run(run_id)["status"]["wait"]
    assert (wait["attempt"], wait["runs"], wait["waitingFor"]) == (1, [child], child)
    # Sent again (its answer lost): the same wait, nothing new.
    again = client.post(_wait_path(run_id), json={"runs": [child]}, headers=auth)
    assert again.json() == {"state": "Waiting"}
    assert namespace.run(run_id)["status"]["wait"] == wait

    # The operator releases it: its token still works, for waits and for its children.
    namespace.set_run_status(run_id, {"phase": "Waiting"})
    assert client.get(f"/api/v1/runs/{child}", headers=auth).status_code == 200
    assert client.get(f"/api/v1/runs/{run_id}").json()["wait"]["runs"] == [child]
    resumed = client.post(_wait_path(run_id) + "/resume", headers=auth)
    assert resumed.json() == {"state": "Resuming"}
    assert namespace.run(run_id)["status"]["wait"]["resumeRequestedAt"]
    assert client.get(_wait_path(run_id), headers=auth).json() == {"state": "Resuming"}

    # Admitted again, the operator clears the wait: the runner goes on.
    namespace.set_run_status(run_id, {"phase": "Executing", "wait": None})
    assert client.get(_wait_path(run_id), headers=auth).json() == {"state": "Resumed"}
    assert client.post(_wait_path(run_id) + "/resume", headers=auth).json() == {"state": "Resumed"}

    namespace.set_run_status(run_id, {"phase": "Canceled"})
    assert_error(client.get(_wait_path(run_id), headers=auth), 401, "attempt_ended")


def test_a_wait_for_a_time_and_bad_waits(client: TestClient, namespace: KubeNamespace) -> None:
    run_id = _executing(client, namespace)
    auth = bearer(attempt_token(run_id))
    until = (datetime.now(UTC) + timedelta(seconds=90)).isoformat()
    answer = client.post(_wait_path(run_id), json={"until": until}, headers=auth)
    assert answer.json() == {"state": "Waiting"}
    words = namespace.run(run_id)["status"]["wait"]["waitingFor"]
    # The seconds left when the API wrote it: at most 90, however slow the machine.
    said = re.fullmatch(r"(\d+)s \(until .*Z\)", words)
    assert said is not None and 0 < int(said.group(1)) <= 90, words

    for body in ({}, {"runs": ["a"], "until": until}, {"runs": ["a"], "runCount": 0}):
        assert_error(
            client.post(_wait_path(run_id), json=body, headers=auth), 422, "invalid_request"
        )
    # Another attempt's token, and no token.
    other = bearer(attempt_token(run_id, 2))
    assert client.post(_wait_path(run_id), json={"until": until}, headers=other).status_code == 403
    assert client.get(_wait_path(run_id)).status_code == 401


def test_a_wait_before_the_operator_recorded_the_attempt_is_tried_again(
    client: TestClient, namespace: KubeNamespace
) -> None:
    run_id = _executing(client, namespace, attempt=1)
    auth = bearer(attempt_token(run_id, 2))  # its pod runs; the run still says attempt 1
    answer = client.post(_wait_path(run_id, 2), json={"runs": ["run-x"]}, headers=auth)
    assert_error(answer, 409, "attempt_not_started")


# --- the pure parts ----------------------------------------------------------------------


def _run(status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "run-p"}, "status": status}


def test_what_a_wait_is_for_in_words() -> None:
    one = WaitRequest(runs=["run-a"])
    assert waiting_for(one, NOW) == "run-a"
    assert waiting_for(WaitRequest(runs=["a", "b", "c"]), NOW) == "a, b, c"
    many = WaitRequest(runs=[f"run-{i}" for i in range(10)], run_count=20)
    assert waiting_for(many, NOW) == "20 runs: run-0, run-1, run-2, …"
    later = WaitRequest(until=NOW + timedelta(hours=3))
    assert waiting_for(later, NOW) == "10800s (until 2026-01-01T03:00:00Z)"


def test_a_wait_while_the_last_one_resumes_is_refused_for_now() -> None:
    resuming = {"attempt": 1, "since": NOW.isoformat(), "resumeRequestedAt": NOW.isoformat()}
    run = _run({"phase": "Waiting", "attempt": 1, "wait": resuming})
    assert wait_state(run, 1) is WaitState.RESUMING
    try:
        wait_write(run, 1, WaitRequest(runs=["a"]), NOW)
    except ApiError as exc:
        assert (exc.status, exc.code) == (409, "wait_resuming")
    else:
        raise AssertionError("a wait while the last one resumes was recorded")
    far = WaitRequest(until=NOW + timedelta(days=400))
    try:
        wait_write(_run({"phase": "Executing", "attempt": 1}), 1, far, NOW)
    except ApiError as exc:
        assert exc.status == 422
    else:
        raise AssertionError("a wait 400 days ahead was recorded")
