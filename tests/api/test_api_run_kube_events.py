"""`GET /api/v1/runs/{id}/kubernetes-events`: the Events of a run and of its attempts' pods,
oldest first, nothing about other objects; and the rules of `kube_events`, pure."""

from __future__ import annotations

from typing import Any

from api_fixtures import assert_error
from fastapi.testclient import TestClient
from kubernetes import client as k8s

from podtask_api.kube_events import MAX_EVENTS, involved_names, run_events_view
from tests.embedded_kube import EmbeddedKube, KubeNamespace


def _event(
    namespace: str, kind: str, name: str, reason: str, at: str, type_: str = "Normal"
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{name}.", "namespace": namespace},
        "involvedObject": {"kind": kind, "name": name, "namespace": namespace},
        "type": type_,
        "reason": reason,
        "message": f"{reason} of {name}",
        "source": {"component": "test"},
        "firstTimestamp": at,
        "lastTimestamp": at,
        "count": 1,
    }


def test_the_events_of_a_run_and_its_pods_oldest_first(
    client: TestClient, namespace: KubeNamespace, embedded_kube: EmbeddedKube
) -> None:
    run_id = client.post("/api/v1/tasks/hello-world/trigger", json={}).json()["id"]
    other = client.post("/api/v1/tasks/hello-world/trigger", json={}).json()["id"]
    namespace.set_run_status(
        run_id,
        {
            "phase": "WaitingToRetry",
            "attempt": 2,
            "attempts": [{"number": n, "pod": f"{run_id}-{n}", "machine": "micro"} for n in (1, 2)],
        },
    )
    core = k8s.CoreV1Api(embedded_kube.api)
    for event in (
        _event(namespace.name, "Pod", f"{run_id}-2", "Started", "2030-01-01T00:00:05Z"),
        _event(namespace.name, "TaskRun", run_id, "Queued", "2030-01-01T00:00:00Z"),
        _event(
            namespace.name, "Pod", f"{run_id}-1", "OOMKilled", "2030-01-01T00:00:02Z", "Warning"
        ),
        _event(namespace.name, "TaskRun", other, "Queued", "2030-01-01T00:00:01Z"),
        _event(namespace.name, "Pod", f"{run_id}-3", "Unrelated", "2030-01-01T00:00:03Z"),
    ):
        core.create_namespaced_event(namespace.name, event)

    answer = client.get(f"/api/v1/runs/{run_id}/kubernetes-events")
    assert answer.status_code == 200, answer.text
    events = answer.json()["data"]
    assert [(e["reason"], e["object"]["kind"], e["object"]["name"]) for e in events] == [
        ("Queued", "TaskRun", run_id),
        ("OOMKilled", "Pod", f"{run_id}-1"),
        ("Started", "Pod", f"{run_id}-2"),
    ]
    assert events[1]["type"] == "Warning" and events[1]["message"] == f"OOMKilled of {run_id}-1"
    assert events[0]["lastAt"] == "2030-01-01T00:00:00Z" and events[0]["source"] == "test"
    assert_error(client.get("/api/v1/runs/run-missing/kubernetes-events"), 404, "run_not_found")


def test_the_names_asked_about_are_the_run_and_every_attempts_pod() -> None:
    run = {"metadata": {"name": "run-a"}, "status": {"attempt": 2, "attempts": [{"number": 1}]}}
    assert involved_names(run) == ["run-a", "run-a-1", "run-a-2"]
    assert involved_names({"metadata": {"name": "run-b"}}) == ["run-b"]


def test_events_listed_twice_count_once_and_only_the_newest_are_kept() -> None:
    def event(n: int) -> dict[str, Any]:
        return {
            "metadata": {"uid": f"u{n}"},
            "reason": f"R{n}",
            "lastTimestamp": f"2030-01-01T00:{n // 60:02d}:{n % 60:02d}Z",
        }

    listed = [[event(n) for n in range(MAX_EVENTS + 5)], [event(3)]]
    shown = run_events_view(listed)
    assert len(shown) == MAX_EVENTS
    assert shown[0]["reason"] == "R5" and shown[-1]["reason"] == f"R{MAX_EVENTS + 4}"
    # An events.k8s.io/v1 Event (eventTime, note, series) reads the same.
    (modern,) = run_events_view(
        [[{"eventTime": "2030-01-01T00:00:00.000000Z", "note": "n", "series": {"count": 3}}]]
    )
    assert modern["message"] == "n" and modern["count"] == 3 and modern["type"] == "Normal"
