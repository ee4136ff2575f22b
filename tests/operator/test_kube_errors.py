"""`api_error`: the typed error for each answer kube-apiserver gives, from the status bodies it
sends (k8s.io/apiserver: the ResourceQuota admission's "exceeded quota", the max-in-flight
filter's 429, RBAC's 403)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from podtask_operator.kube import Conflict, Kube, NotFound, Refused, Transient, api_error


class _Response:
    """What the client's ApiException reads from an HTTP response."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        self.status = status
        self.reason = {403: "Forbidden", 404: "Not Found", 409: "Conflict"}.get(status, "")
        self.data = json.dumps(body).encode()
        self.headers = headers

    def getheaders(self) -> dict[str, str]:
        return self.headers


def _refusal(
    status: int, reason: str, message: str, headers: dict[str, str] | None = None
) -> ApiException:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": status,
    }
    return ApiException(http_resp=_Response(status, body, headers or {}))


QUOTA = (
    'pods "run-abc-1" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, '
    "limited: pods=2"
)


def test_an_exceeded_quota_is_transient_and_not_retried_in_the_call() -> None:
    error = api_error(_refusal(403, "Forbidden", QUOTA))
    assert isinstance(error, Transient)
    assert error.quota_exceeded
    assert (error.status, error.reason, error.message) == (403, "QuotaExceeded", QUOTA)


def test_throttling_is_transient_with_its_retry_after() -> None:
    error = api_error(
        _refusal(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            {"Retry-After": "1"},
        )
    )
    assert isinstance(error, Transient)
    assert not error.quota_exceeded
    assert (error.reason, error.retry_after) == ("TooManyRequests", 1.0)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient(status: int) -> None:
    assert isinstance(
        api_error(_refusal(status, "InternalError", "etcdserver: timeout")), Transient
    )


def test_connection_errors_are_transient() -> None:
    refused = urllib3.exceptions.MaxRetryError(None, "/api", "Connection refused")  # type: ignore[arg-type]
    error = api_error(refused)
    assert isinstance(error, Transient) and error.status is None


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        (
            403,
            "Forbidden",
            'pods is forbidden: User "system:serviceaccount:podtask:podtask-operator" cannot '
            'create resource "pods" in API group "" in the namespace "tasks"',
        ),
        # The quota admission's other refusals are the namespace's setup, not a passing state.
        (
            403,
            "Forbidden",
            'pods "run-abc-1" is forbidden: failed quota: compute: must specify limits.cpu',
        ),
        (422, "Invalid", 'Pod "run-abc-1" is invalid: spec.containers[0].image: Required value'),
        (400, "BadRequest", "the object provided is unrecognized"),
        (413, "RequestEntityTooLarge", "limit is 3145728"),
    ],
)
def test_other_refusals_are_permanent(status: int, reason: str, message: str) -> None:
    error = api_error(_refusal(status, reason, message))
    assert isinstance(error, Refused)
    assert (error.status, error.reason, error.message) == (status, reason, message)


def test_not_found_and_conflicts() -> None:
    assert isinstance(api_error(_refusal(404, "NotFound", 'pods "x" not found')), NotFound)
    exists = api_error(_refusal(409, "AlreadyExists", 'pods "x" already exists'))
    assert isinstance(exists, Conflict) and exists.reason == "AlreadyExists"


def test_other_exceptions_are_not_api_errors() -> None:
    assert api_error(KeyError("status")) is None


class _Answers:
    """A request that the apiserver answers with `errors` first, then with an empty object."""

    def __init__(self, *errors: ApiException) -> None:
        self.errors = list(errors)
        self.sent = 0

    def __call__(self) -> Any:
        self.sent += 1
        if self.errors:
            raise self.errors.pop(0)
        return _Response(200, {}, {})


@pytest.mark.anyio
async def test_a_call_retries_what_passes_and_not_an_exceeded_quota() -> None:
    kube = Kube(client.ApiClient(), workers=1)
    try:
        busy = _Answers(*[_refusal(503, "ServiceUnavailable", "etcd leader changed")] * 2)
        assert await kube.call(busy) == {}
        assert busy.sent == 3
        quota = _Answers(_refusal(403, "Forbidden", QUOTA))
        with pytest.raises(Transient) as refused:
            await kube.call(quota)
        assert quota.sent == 1 and refused.value.quota_exceeded
        forbidden = _Answers(_refusal(403, "Forbidden", "cannot create resource pods"))
        with pytest.raises(Refused):
            await kube.call(forbidden)
        assert forbidden.sent == 1
        assert await kube.get_or_none(_Answers(_refusal(404, "NotFound", "gone"))) is None
    finally:
        kube.close()
