"""`Kube`: the operator's one way to call the Kubernetes API, and the typed errors it raises.

The official client is synchronous, so every call runs on a thread pool of the `Kube`, its
answer read and parsed there too, and the event loop never blocks. A failed call raises one
of four errors, decided once here (`api_error`) so that no caller reads HTTP status codes:

- `NotFound` (404): the object is not there.
- `Conflict` (409): it exists already (AlreadyExists), or it changed since the version a
  write was made against.
- `Refused` (any other 4xx): the apiserver or an admission plugin refuses the request, and
  sending it again cannot help (invalid, forbidden by RBAC or a policy, too large).
- `Transient` (5xx, 429, a ResourceQuota's "exceeded quota", connection errors): the same
  request may succeed later. Calls retry these with a short backoff, except an exceeded
  quota, which frees only as other pods end: the caller decides how long to wait for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from podtask_operator.metrics import count_kube_requests

log = logging.getLogger(__name__)

DEFAULT_RETRIES = 5
_FIRST_DELAY = 0.1
_MAX_DELAY = 2.0
# A Retry-After longer than this is not waited inside one call: the caller's own backoff
# (a run waiting for admission, the next sweep) is the better place for a long wait.
_MAX_RETRY_AFTER = 5.0
# What kube-apiserver's ResourceQuota admission says when a create would exceed a quota
# ("pods "x" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited:
# pods=2"). Its other refusals ("insufficient quota to consume", "failed quota: … must
# specify limits.cpu") are about the object or the namespace's setup, and stay permanent.
_EXCEEDED_QUOTA = "exceeded quota"


class KubeError(Exception):
    """A refused or failed call: the HTTP status (None for a connection error), the
    apiserver's reason (`AlreadyExists`, `Forbidden`, `TooManyRequests`…) and its message."""

    def __init__(self, status: int | None, reason: str, message: str) -> None:
        super().__init__(f"{status or 'no response'} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    pass


class Refused(KubeError):
    pass


class Transient(KubeError):
    def __init__(
        self, status: int | None, reason: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(status, reason, message)
        self.retry_after = retry_after

    @property
    def quota_exceeded(self) -> bool:
        return self.reason == "QuotaExceeded"


def _body(exc: ApiException) -> Mapping[str, Any]:
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(exc: ApiException) -> float | None:
    value = (exc.headers or {}).get("Retry-After")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def api_error(exc: BaseException) -> KubeError | None:
    """The typed error for a failed call; None when `exc` is not an API or connection error
    (a bug of ours, which must surface as it is)."""
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, ApiException):
        status = exc.status
        body = _body(exc)
        message = str(body.get("message") or exc.body or exc.reason or "")
        reason = str(body.get("reason") or exc.reason or "")
        if status == 404:
            return NotFound(status, reason or "NotFound", message)
        if status == 409:
            return Conflict(status, reason or "Conflict", message)
        if status == 403 and _EXCEEDED_QUOTA in message:
            return Transient(status, "QuotaExceeded", message)
        if status == 429:
            return Transient(status, reason or "TooManyRequests", message, _retry_after(exc))
        if status is not None and 400 <= status < 500:
            return Refused(status, reason, message)
        if status is None or status >= 500:
            return Transient(status, reason or "ServerError", message)
        return Refused(status, reason, message)
    if isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError | TimeoutError):
        return Transient(None, type(exc).__name__, str(exc))
    return None


def load_api_client() -> kubernetes.client.ApiClient:
    """A client from the in-cluster service account, else from KUBECONFIG; its requests are
    counted (`podtask_kube_requests_total`)."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = 32
    return count_kube_requests(kubernetes.client.ApiClient(configuration))


def _answer_of(fn: Callable[[], Any]) -> dict[str, Any]:
    """Send the request and read its JSON answer (on a pool thread: reading waits)."""
    return json.loads(fn().data or b"{}")  # type: ignore[no-any-return]


class Kube:
    """Calls through one `ApiClient` on a thread pool of its own; the typed errors above.

    `retries` is how many times a call is sent while it fails transiently (1: never again,
    for callers with a deadline of their own, such as Lease renewals).
    """

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        workers: int = 32,
        thread_name: str = "kube",
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.coordination = kubernetes.client.CoordinationV1Api(api_client)
        self._retries = retries
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def call(self, fn: Callable[[], Any]) -> dict[str, Any]:
        """Send one request (`fn` calls the client with `_preload_content=False`); its JSON."""
        loop = asyncio.get_running_loop()
        delay = _FIRST_DELAY
        for attempt in range(1, self._retries + 1):
            try:
                return await loop.run_in_executor(self._pool, _answer_of, fn)
            except Exception as exc:
                error = api_error(exc)
                if error is None:
                    raise
                last = attempt == self._retries
                if not isinstance(error, Transient) or error.quota_exceeded or last:
                    raise error from exc
                log.warning("transient Kubernetes API error (try %d): %s", attempt, error)
                wait = delay
                if error.retry_after is not None:
                    wait = max(wait, min(error.retry_after, _MAX_RETRY_AFTER))
                await asyncio.sleep(wait)
                delay = min(delay * 2, _MAX_DELAY)
        raise AssertionError("unreachable")

    async def get_or_none(self, fn: Callable[[], Any]) -> dict[str, Any] | None:
        try:
            return await self.call(fn)
        except NotFound:
            return None
