"""The Kubernetes requests the control plane counts: each one's verb and resource, as
kube-apiserver names them, and the hook on the client's REST layer."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from podtask._control.kube_requests import (
    NO_ANSWER,
    KubeRequest,
    kube_request,
    report_requests,
)

BASE = "https://127.0.0.1:6443"
RUNS = f"{BASE}/apis/podtask.dev/v1alpha1/namespaces/tasks/taskruns"


@pytest.mark.parametrize(
    ("method", "url", "verb", "resource"),
    [
        ("GET", f"{RUNS}/run-1", "get", "taskruns"),
        ("GET", f"{RUNS}?labelSelector=a%3Db&limit=500", "list", "taskruns"),
        ("GET", f"{RUNS}?watch=True&resourceVersion=7", "watch", "taskruns"),
        ("GET", f"{RUNS}?watch=true", "watch", "taskruns"),
        ("POST", RUNS, "create", "taskruns"),
        ("PATCH", f"{RUNS}/run-1/status", "patch", "taskruns/status"),
        ("PUT", f"{RUNS}/run-1", "update", "taskruns"),
        ("DELETE", f"{RUNS}/run-1", "delete", "taskruns"),
        ("DELETE", RUNS, "deletecollection", "taskruns"),
        ("GET", f"{BASE}/api/v1/namespaces/tasks/pods/run-1-1/log", "get", "pods/log"),
        ("POST", f"{BASE}/api/v1/namespaces/tasks/events", "create", "events"),
        ("GET", f"{BASE}/api/v1/namespaces/tasks", "get", "namespaces"),
        ("PUT", f"{BASE}/api/v1/namespaces/tasks/finalize", "update", "namespaces/finalize"),
        ("GET", f"{BASE}/api/v1/nodes", "list", "nodes"),
        ("GET", f"{BASE}/api/v1/watch/namespaces/tasks/pods", "watch", "pods"),
        (
            "PUT",
            f"{BASE}/apis/coordination.k8s.io/v1/namespaces/tasks/leases/op",
            "update",
            "leases",
        ),
        ("GET", f"{BASE}/version", "get", ""),
        ("GET", f"{BASE}/apis/podtask.dev/v1alpha1", "get", ""),
    ],
)
def test_verb_and_resource(method: str, url: str, verb: str, resource: str) -> None:
    assert kube_request(method, url) == KubeRequest(verb, resource)


def test_query_parameters_passed_apart_count_too() -> None:
    assert kube_request("GET", RUNS, [("watch", True)]).verb == "watch"


class _Response:
    def __init__(self, status: int) -> None:
        self.status = status


class _Rest:
    """The REST layer's `request` as the client calls it: answers are queued by the test."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers

    def request(self, method: str, url: str, **_: Any) -> _Response:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return _Response(answer)


class _Client:
    def __init__(self, answers: list[Any]) -> None:
        self.rest_client = _Rest(answers)


def test_every_request_is_reported_with_its_answer_code() -> None:
    seen: list[tuple[str, str, str]] = []
    client = _Client([200, 404, ApiException(status=409), ConnectionResetError()])
    assert report_requests(client, lambda r, code: seen.append((r.verb, r.resource, code)))
    # Hooked once, whoever asks again.
    report_requests(client, lambda r, code: seen.append(("twice", "", code)))
    client.rest_client.request("GET", f"{RUNS}/a")
    client.rest_client.request("GET", f"{RUNS}/b")
    with pytest.raises(ApiException):
        client.rest_client.request("POST", RUNS)
    with pytest.raises(ConnectionResetError):
        client.rest_client.request("GET", RUNS)
    assert seen == [
        ("get", "taskruns", "200"),
        ("get", "taskruns", "404"),
        ("create", "taskruns", "409"),
        ("list", "taskruns", NO_ANSWER),
    ]
