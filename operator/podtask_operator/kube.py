"""`Kube`: the operator's one way to call the Kubernetes API, and the typed errors it raises.

Calls go over aiohttp on the caller's event loop: no thread per request, and the JSON answer
parsed once, as kopf's own watches do. Who the operator is (server, CA, client certificate,
bearer token, renewed as a service account's or an exec plugin's token expires) is its
`KubeLogin` (`podtask_operator.kube_login`), the one kopf logs in with too. A failed call
raises one of four errors, decided once here
(`refusal`, `api_error`) so that no caller reads HTTP status codes:

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
import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp

from podtask._control.kube_requests import NO_ANSWER, KubeRequest, kube_request
from podtask_operator.kube_login import KubeLogin
from podtask_operator.metrics import report_kube_request

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
_JSON = "application/json"
# No answer in this long is a lost connection (kube-apiserver's own request timeout is 60 s).
DEFAULT_TIMEOUT = 90.0


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


def _status_body(body: bytes) -> Mapping[str, Any]:
    try:
        parsed = json.loads(body or b"")
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def refusal(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> KubeError:
    """The typed error for an answer of HTTP status `status` (≥ 400) and its body, normally a
    `Status` object (`reason`, `message`)."""
    parsed = _status_body(body)
    message = str(parsed.get("message") or body.decode("utf-8", "replace"))
    reason = str(parsed.get("reason") or "")
    if status == 404:
        return NotFound(status, reason or "NotFound", message)
    if status == 409:
        return Conflict(status, reason or "Conflict", message)
    if status == 403 and _EXCEEDED_QUOTA in message:
        return Transient(status, "QuotaExceeded", message)
    if status == 429:
        return Transient(status, reason or "TooManyRequests", message, _retry_after(headers or {}))
    if 400 <= status < 500:
        return Refused(status, reason, message)
    return Transient(status, reason or "ServerError", message)


def api_error(exc: BaseException) -> KubeError | None:
    """The typed error for a failed call; None when `exc` is not an API or connection error
    (a bug of ours, which must surface as it is)."""
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, aiohttp.ClientError | ConnectionError | TimeoutError):
        return Transient(None, type(exc).__name__, str(exc))
    return None


def _ssl_context(login: KubeLogin) -> ssl.SSLContext | bool:
    if not login.server.startswith("https"):
        return False
    return login.connection.as_ssl_context()


class Kube:
    """Calls over one aiohttp session per event loop (the Lease keeper has a loop of its own);
    the typed errors above; every request counted in `podtask_kube_requests_total`.

    `retries` is how many times a call is sent while it fails transiently (1: never again,
    for callers with a deadline of their own, such as Lease renewals); `connections` bounds
    the requests in flight at once, as kube-apiserver's max-in-flight would otherwise.
    """

    def __init__(
        self,
        login: KubeLogin,
        *,
        connections: int = 32,
        retries: int = DEFAULT_RETRIES,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._login = login
        self._server = login.server
        self._ssl = _ssl_context(login)
        self._connections = connections
        self._retries = retries
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, ssl=self._ssl),
                timeout=self._timeout,
            )
            self._sessions[loop] = session
        return session

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": _JSON}
        if content_type is not None:
            headers["Content-Type"] = content_type
        # Made per request: a token read from a file or made by a plugin is renewed.
        headers.update(self._login.headers())
        return headers

    async def close(self) -> None:
        """Close the session of the running loop (each loop that called closes its own)."""
        session = self._sessions.pop(asyncio.get_running_loop(), None)
        if session is not None:
            await session.close()

    async def _send(
        self,
        what: KubeRequest,
        method: str,
        path: str,
        params: Mapping[str, str | int] | None,
        data: bytes | None,
        content_type: str,
    ) -> dict[str, Any]:
        try:
            async with self._session().request(
                method,
                self._server + path,
                params=params,
                data=data,
                headers=self._headers(None if data is None else content_type),
            ) as response:
                answer = await response.read()
        except BaseException:
            report_kube_request(what, NO_ANSWER)
            raise
        report_kube_request(what, str(response.status))
        if response.status >= 400:
            raise refusal(response.status, answer, response.headers)
        parsed = json.loads(answer or b"{}")
        return parsed if isinstance(parsed, dict) else {}

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str = _JSON,
    ) -> dict[str, Any]:
        """Send one request to `path` (from the server's root: `/api/v1/…`, `/apis/…`) and
        return its JSON answer; retried while it fails transiently."""
        # Named and encoded once; only the headers are made again for each try (a token may
        # have been renewed meanwhile).
        what = kube_request(method, path, (params or {}).items())
        data = None if body is None else json.dumps(body).encode()
        delay = _FIRST_DELAY
        for attempt in range(1, self._retries + 1):
            try:
                return await self._send(what, method, path, params, data, content_type)
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

    async def get_or_none(
        self, path: str, *, params: Mapping[str, str | int] | None = None
    ) -> dict[str, Any] | None:
        try:
            return await self.request("GET", path, params=params)
        except NotFound:
            return None


def core_path(namespace: str, plural: str, name: str | None = None) -> str:
    """The path of a core (`v1`) resource of a namespace, or of one object of it."""
    return f"/api/v1/namespaces/{namespace}/{plural}" + ("" if name is None else f"/{name}")


def group_path(
    group: str, version: str, namespace: str, plural: str, name: str | None = None
) -> str:
    """The path of a resource of an API group in a namespace, or of one object of it."""
    base = f"/apis/{group}/{version}/namespaces/{namespace}/{plural}"
    return base + ("" if name is None else f"/{name}")
