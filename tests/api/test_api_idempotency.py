"""Idempotency keys: the same key (per task) within its TTL finds its run; a run that ends in
any final status but Completed, or an expired TTL, releases the key; under 50 concurrent
identical triggers there is one run.

The decision itself is pure (`idempotency_decision`); the rest runs over the embedded
cluster, the test writing run status as the operator would.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier
from typing import Any

import httpx
import pytest
from api_fixtures import API_KEY, HELLO, assert_error, served, settings_for
from fastapi.testclient import TestClient
from pydantic import ValidationError

from podtask._contract.resources import FINAL_PHASES, RunPhase
from podtask._contract.trigger_request import MAX_DELAY_SECONDS, duration_seconds
from podtask._contract.wire import GROUP, VERSION
from podtask_api.app import create_app
from podtask_api.idempotency import (
    ANNOTATION_IDEMPOTENCY_EXPIRES_AT,
    DEFAULT_IDEMPOTENCY_KEY_TTL_SECONDS,
    LABEL_IDEMPOTENCY,
    holds_key,
    idempotency_decision,
    idempotency_label,
)
from podtask_api.run_names import idempotent_run_name, run_generation
from podtask_api.task_runs import build_task_run
from podtask_api.trigger_requests import TriggerOptions, TriggerRequest
from tests.embedded_kube import EmbeddedKube, KubeNamespace

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TRIGGER = "/api/v1/tasks/hello-world/trigger"
RELEASING = sorted(FINAL_PHASES - {RunPhase.COMPLETED})


def keyed_run(
    generation: int,
    phase: str | None = None,
    *,
    key: str = "k",
    expires: datetime | None = NOW + timedelta(days=1),
    **metadata: Any,
) -> dict[str, Any]:
    """A run of HELLO's key `key` as the cluster would list it."""
    annotations = {ANNOTATION_IDEMPOTENCY_EXPIRES_AT: expires.isoformat()} if expires else {}
    return {
        "metadata": {
            "name": idempotent_run_name("hello-world", key, generation),
            "annotations": annotations,
            "creationTimestamp": "2024-05-01T11:00:00Z",
            **metadata,
        },
        "spec": {"taskId": "hello-world", "idempotencyKey": key},
        "status": {"phase": phase} if phase else {},
    }


# -- the decision, pure -------------------------------------------------------------------


def test_no_run_yet_creates_the_first() -> None:
    decision = idempotency_decision([], "hello-world", "k", NOW)
    assert (decision.reuse, decision.generation) == (None, 1)


@pytest.mark.parametrize("phase", [None, "Delayed", "Queued", "Executing", "Completed"])
def test_a_live_or_completed_run_holds_its_key(phase: str | None) -> None:
    decision = idempotency_decision([keyed_run(1, phase)], "hello-world", "k", NOW)
    assert decision.reuse == idempotent_run_name("hello-world", "k", 1)


@pytest.mark.parametrize("phase", RELEASING)
def test_any_other_final_status_releases_the_key(phase: RunPhase) -> None:
    runs = [keyed_run(1, "Completed", expires=NOW - timedelta(days=1)), keyed_run(2, phase)]
    decision = idempotency_decision(runs, "hello-world", "k", NOW)
    assert (decision.reuse, decision.generation) == (None, 3)


def test_an_expired_ttl_releases_the_key_and_the_newest_run_decides() -> None:
    expired = keyed_run(3, "Executing", expires=NOW)
    assert idempotency_decision([expired], "hello-world", "k", NOW).generation == 4
    # An older generation still live does not hold the key: the newest does, or nothing.
    live_older = keyed_run(1, "Executing")
    assert idempotency_decision([live_older, expired], "hello-world", "k", NOW).reuse is None


def test_a_run_without_the_annotation_holds_the_key_for_the_default_ttl() -> None:
    run = keyed_run(1, "Completed", expires=None)
    created = datetime(2024, 5, 1, 11, tzinfo=UTC)
    assert holds_key(run, created + timedelta(seconds=DEFAULT_IDEMPOTENCY_KEY_TTL_SECONDS - 1))
    assert not holds_key(run, created + timedelta(seconds=DEFAULT_IDEMPOTENCY_KEY_TTL_SECONDS))


def test_a_run_being_deleted_releases_the_key() -> None:
    run = keyed_run(1, "Completed", deletionTimestamp="2024-05-01T11:59:00Z")
    assert idempotency_decision([run], "hello-world", "k", NOW).generation == 2


def test_runs_of_another_key_under_the_same_label_are_not_this_keys() -> None:
    other = keyed_run(1, "Executing", key="other")
    assert idempotency_decision([other], "hello-world", "k", NOW).generation == 1
    not_keyed = {**keyed_run(1), "metadata": {"name": "run-0123456789abcdefg"}}
    assert idempotency_decision([not_keyed], "hello-world", "k", NOW).generation == 1


def test_generations_are_read_from_the_name() -> None:
    name = idempotent_run_name("hello-world", "k", 12)
    assert run_generation(name, "hello-world", "k") == 12
    assert run_generation(name, "hello-world", "other") is None
    assert run_generation(name[:-2] + "01", "hello-world", "k") is None
    assert run_generation(name[:-2] + "x", "hello-world", "k") is None


@pytest.mark.parametrize(
    ("ttl", "seconds"),
    [(90, 90), (90.0, 90), ("30s", 30), ("10m", 600), ("24h", 86400), ("30d", 2592000)],
)
def test_idempotency_key_ttls(ttl: Any, seconds: int) -> None:
    options = TriggerOptions.model_validate({"idempotencyKey": "k", "idempotencyKeyTTL": ttl})
    assert options.idempotency_key_ttl == seconds
    assert duration_seconds("999999999w") == MAX_DELAY_SECONDS  # for ever, in range


@pytest.mark.parametrize("ttl", [0, -5, 1.5, True, "10", "10x", "0m", "1 h", "", None])
def test_bad_idempotency_key_ttls_are_refused(ttl: Any) -> None:
    if ttl is None:
        assert (
            TriggerOptions.model_validate({"idempotencyKeyTTL": None}).idempotency_key_ttl is None
        )
        return
    with pytest.raises(ValidationError) as refused:
        TriggerOptions.model_validate({"idempotencyKeyTTL": ttl})
    assert [error["loc"] for error in refused.value.errors()] == [("idempotencyKeyTTL",)]


def test_a_keyed_run_carries_its_label_and_until_when_it_holds_the_key() -> None:
    request = TriggerRequest.model_validate(
        {"options": {"idempotencyKey": "k", "idempotencyKeyTTL": "10m"}}
    )
    metadata = build_task_run(HELLO, request, "run-x", now=NOW)["metadata"]
    assert metadata["labels"][LABEL_IDEMPOTENCY] == idempotency_label("hello-world", "k")
    assert metadata["annotations"] == {ANNOTATION_IDEMPOTENCY_EXPIRES_AT: "2024-05-01T12:10:00Z"}
    default = build_task_run(
        HELLO, TriggerRequest.model_validate({"options": {"idempotencyKey": "k"}}), "run-x", now=NOW
    )
    assert default["metadata"]["annotations"] == {
        ANNOTATION_IDEMPOTENCY_EXPIRES_AT: "2024-05-31T12:00:00Z"
    }
    unkeyed = build_task_run(HELLO, TriggerRequest(), "run-x", now=NOW)["metadata"]
    assert LABEL_IDEMPOTENCY not in unkeyed["labels"] and "annotations" not in unkeyed


# -- over the embedded cluster ------------------------------------------------------------


def trigger(client: TestClient, key: str = "order-1", **options: Any) -> dict[str, Any]:
    response = client.post(TRIGGER, json={"options": {"idempotencyKey": key, **options}})
    assert response.status_code in (200, 201), response.text
    answer: dict[str, Any] = response.json()
    assert response.status_code == (200 if answer["isCached"] else 201)
    return answer


def test_the_same_key_finds_its_run_until_it_fails(
    client: TestClient, namespace: KubeNamespace
) -> None:
    first = trigger(client)
    assert first == {"id": idempotent_run_name("hello-world", "order-1", 1), "isCached": False}
    assert trigger(client) == {**first, "isCached": True}
    namespace.set_run_status(first["id"], {"phase": "Executing", "attempt": 1})
    assert trigger(client)["isCached"] is True

    namespace.set_run_status(first["id"], {"phase": "Failed"})
    second = trigger(client)
    assert second == {"id": idempotent_run_name("hello-world", "order-1", 2), "isCached": False}
    assert trigger(client) == {**second, "isCached": True}

    namespace.set_run_status(second["id"], {"phase": "Completed"})
    assert trigger(client) == {**second, "isCached": True}  # Completed keeps it
    assert trigger(client, key="order-2")["isCached"] is False  # other keys are other runs
    view = client.get(f"/api/v1/runs/{second['id']}").json()
    assert view["idempotencyKey"] == "order-1" and view["idempotencyKeyExpiresAt"]


def test_an_expired_ttl_releases_the_key(
    client: TestClient, embedded_kube: EmbeddedKube, namespace: KubeNamespace
) -> None:
    first = trigger(client, idempotencyKeyTTL="10m")
    stored = namespace.run(first["id"])
    expires = datetime.fromisoformat(
        stored["metadata"]["annotations"][ANNOTATION_IDEMPOTENCY_EXPIRES_AT]
    )
    assert timedelta(minutes=9) < expires - datetime.now(UTC) <= timedelta(minutes=10)
    assert trigger(client, idempotencyKeyTTL="10m")["isCached"] is True

    # Ten minutes later, as far as the key is concerned.
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    embedded_kube._objects.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace.name,
        "taskruns",
        first["id"],
        {"metadata": {"annotations": {ANNOTATION_IDEMPOTENCY_EXPIRES_AT: past}}},
    )
    again = trigger(client)
    assert again == {"id": idempotent_run_name("hello-world", "order-1", 2), "isCached": False}
    assert namespace.run(first["id"])["metadata"]["name"] == first["id"]  # the old run stays


def test_a_bad_ttl_is_422_naming_it(client: TestClient, namespace: KubeNamespace) -> None:
    body = {"options": {"idempotencyKey": "k", "idempotencyKeyTTL": "ten minutes"}}
    error = assert_error(client.post(TRIGGER, json=body), 422, "invalid_request")
    assert [d["field"] for d in error["details"]] == ["options.idempotencyKeyTTL"]
    assert namespace.run_names() == []


def test_a_batch_reuses_and_releases_keys_alike(
    client: TestClient, namespace: KubeNamespace
) -> None:
    held = trigger(client, key="held")
    failed = trigger(client, key="failed")
    namespace.set_run_status(failed["id"], {"phase": "Crashed"})
    items = [
        {"task": "hello-world", "options": {"idempotencyKey": "held"}},
        {"task": "hello-world", "options": {"idempotencyKey": "failed"}},
        {"task": "hello-world", "options": {"idempotencyKey": "failed"}},
        {"task": "hello-world", "options": {"idempotencyKey": "new", "idempotencyKeyTTL": 60}},
    ]
    response = client.post("/api/v1/tasks/batch", json={"items": items})
    assert response.status_code == 201, response.text
    runs = response.json()["runs"]
    assert runs[0] == {**held, "isCached": True}
    assert runs[1] == {"id": idempotent_run_name("hello-world", "failed", 2), "isCached": False}
    assert runs[2] == {**runs[1], "isCached": True}
    assert runs[3] == {"id": idempotent_run_name("hello-world", "new", 1), "isCached": False}


@pytest.fixture
def api_url(embedded_kube: EmbeddedKube, namespace: KubeNamespace) -> Iterator[str]:
    with served(create_app(settings_for(embedded_kube, namespace))) as url:
        yield url


def test_fifty_concurrent_identical_triggers_make_one_run(
    api_url: str, namespace: KubeNamespace
) -> None:
    body = {"payload": {"invoice": 42}, "options": {"idempotencyKey": "invoice-42"}}
    start = Barrier(50)

    def send(http: httpx.Client) -> httpx.Response:
        start.wait()  # all fifty at the same moment
        return http.post(TRIGGER, json=body)

    clients = [
        httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30)
        for _ in range(50)
    ]
    try:
        with ThreadPoolExecutor(50) as pool:
            responses = list(pool.map(send, clients))
    finally:
        for http in clients:
            http.close()
    assert sorted({r.status_code for r in responses}) in ([200, 201], [201]), [
        r.text for r in responses if r.status_code not in (200, 201)
    ]
    answers = [r.json() for r in responses]
    assert {a["id"] for a in answers} == {idempotent_run_name("hello-world", "invoice-42", 1)}
    assert [a["isCached"] for a in answers].count(False) == 1
    assert namespace.run_names() == [answers[0]["id"]]
