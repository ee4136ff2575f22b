"""`refusal` and `api_error`: the typed error for each answer kube-apiserver gives, from the
status bodies it sends (k8s.io/apiserver: the ResourceQuota admission's "exceeded quota", the
max-in-flight filter's 429, RBAC's 403)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import kopf
import pytest
from aiohttp import web

from podtask_operator.kube import (
    Conflict,
    Kube,
    KubeError,
    NotFound,
    Refused,
    Transient,
    api_error,
    refusal,
)
from podtask_operator.kube_login import KubeLogin


def _refusal(
    status: int, reason: str, message: str, headers: dict[str, str] | None = None
) -> KubeError:
    """The typed error for kube-apiserver's `Status` answer of this code, reason and message."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": status,
    }
    return refusal(status, json.dumps(body).encode(), headers or {})


QUOTA = (
    'pods "run-abc-1" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=2, '
    "limited: pods=2"
)


def test_an_exceeded_quota_is_transient_and_not_retried_in_the_call() -> None:
    error = _refusal(403, "Forbidden", QUOTA)
    assert isinstance(error, Transient)
    assert error.quota_exceeded
    assert (error.status, error.reason, error.message) == (403, "QuotaExceeded", QUOTA)


def test_throttling_is_transient_with_its_retry_after() -> None:
    error = _refusal(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        {"Retry-After": "1"},
    )
    assert isinstance(error, Transient)
    assert not error.quota_exceeded
    assert (error.reason, error.retry_after) == ("TooManyRequests", 1.0)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_transient(status: int) -> None:
    assert isinstance((_refusal(status, "InternalError", "etcdserver: timeout")), Transient)


def test_connection_errors_are_transient() -> None:
    for lost in (aiohttp.ClientConnectionError("Connection refused"), TimeoutError()):
        error = api_error(lost)
        assert isinstance(error, Transient) and error.status is None


def test_an_answer_that_is_not_a_status_keeps_its_text() -> None:
    error = refusal(502, b"<html>Bad Gateway</html>")
    assert isinstance(error, Transient)
    assert (error.reason, error.message) == ("ServerError", "<html>Bad Gateway</html>")


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
    error = _refusal(status, reason, message)
    assert isinstance(error, Refused)
    assert (error.status, error.reason, error.message) == (status, reason, message)


def test_not_found_and_conflicts() -> None:
    assert isinstance((_refusal(404, "NotFound", 'pods "x" not found')), NotFound)
    exists = _refusal(409, "AlreadyExists", 'pods "x" already exists')
    assert isinstance(exists, Conflict) and exists.reason == "AlreadyExists"


def test_other_exceptions_are_not_api_errors() -> None:
    assert api_error(KeyError("status")) is None


class _Apiserver:
    """An HTTP server that answers each request with the next of `answers` (status, body),
    then with an empty object: a stand-in for kube-apiserver's failures, which a real one
    gives only under load or misconfiguration."""

    def __init__(self, *answers: tuple[int, dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.sent = 0

    async def answer(self, request: web.Request) -> web.Response:
        self.sent += 1
        status, body = self.answers.pop(0) if self.answers else (200, {})
        return web.json_response(body, status=status)


def _status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    return code, {"kind": "Status", "code": code, "reason": reason, "message": message}


@pytest.mark.component  # a real HTTP server on a local port
@pytest.mark.anyio
async def test_a_call_retries_what_passes_and_not_an_exceeded_quota() -> None:
    apiserver = _Apiserver()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", apiserver.answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    kube = Kube(KubeLogin(kopf.ConnectionInfo(server=f"http://127.0.0.1:{port}")))
    path = "/api/v1/namespaces/tasks/pods"
    try:
        apiserver.answers = [_status(503, "ServiceUnavailable", "etcd leader changed")] * 2
        assert await kube.request("POST", path, body={}) == {}
        assert apiserver.sent == 3
        apiserver.sent, apiserver.answers = 0, [_status(403, "Forbidden", QUOTA)]
        with pytest.raises(Transient) as refused:
            await kube.request("POST", path, body={})
        assert apiserver.sent == 1 and refused.value.quota_exceeded
        apiserver.sent, apiserver.answers = 0, [_status(403, "Forbidden", "cannot create pods")]
        with pytest.raises(Refused):
            await kube.request("POST", path, body={})
        assert apiserver.sent == 1
        apiserver.answers = [_status(404, "NotFound", "gone")]
        assert await kube.get_or_none(path + "/x") is None
    finally:
        await kube.close()
        await runner.cleanup()
