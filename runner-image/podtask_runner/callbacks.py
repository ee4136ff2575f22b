"""The runner's calls to the API: fetch the attempt, report its outcome, send its log and
its run's metadata.

All carry the attempt token. Transient failures (connection errors, 5xx, 429,
and an attempt the operator has not recorded yet) are retried with a short
backoff; anything else raises `ApiCallError`, or `AttemptEnded` when the API says the
attempt is over (the run was canceled, timed out, or moved on): nothing went wrong then,
there is only nothing left to do. The HTTP itself is `api_transport`'s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from podtask._contract.wire import (
    ATTEMPT_ENDED,
    ATTEMPT_NOT_STARTED,
    RUNNER_ATTEMPT_PATH,
    RUNNER_METADATA_PATH,
)
from podtask_runner.api_transport import (
    TRANSPORT_ERRORS,
    ApiRequest,
    ApiResponse,
    HttpTransport,
    Timeout,
    Transport,
)

if TYPE_CHECKING:
    from podtask._contract.attempt_logs import LogChunk
    from podtask_runner.attempt import Outcome


class ApiCallError(Exception):
    """The runner could not get an answer it can use from the API."""


class AttemptEnded(ApiCallError):
    """The API refused the call because the attempt has ended; `why` says how (the run
    finished as Canceled, it is on attempt 2, ...)."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


@dataclass(frozen=True)
class CallRetry:
    """How often and how patiently one API call is tried.

    By default for about a minute: an API that crashed is back well within that (a
    Deployment's, or `podtask dev`'s, restart), and an attempt that already did its work must
    not be lost, and run again, because its report met a restarting API.
    """

    attempts: int = 24
    first_delay: float = 0.2
    factor: float = 2.0
    max_delay: float = 3.0

    def delays(self) -> list[float]:
        """The sleeps between tries: one fewer than `attempts`."""
        return [
            min(self.max_delay, self.first_delay * self.factor**n) for n in range(self.attempts - 1)
        ]


# A stopping pod's report: two quick tries, well inside Kubernetes' default 30 s grace.
HURRIED_RETRY = CallRetry(attempts=2, first_delay=0.2)
HURRIED_TIMEOUT = Timeout(read=3.0, connect=1.0)
DEFAULT_TIMEOUT = Timeout(read=30.0, connect=5.0)


def is_transient(response: ApiResponse) -> bool:
    if response.status_code >= 500 or response.status_code == 429:
        return True
    # The operator may start the pod a moment before its status says which attempt it is.
    return response.status_code == 409 and _error_code(response) == ATTEMPT_NOT_STARTED


def _error(response: ApiResponse) -> dict[str, Any]:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _error_code(response: ApiResponse) -> str | None:
    code = _error(response).get("code")
    return code if isinstance(code, str) else None


def ended_attempt(response: ApiResponse) -> str | None:
    """How the attempt ended, when the API refused the call for that (401 `attempt_ended`)."""
    if response.status_code != 401 or _error_code(response) != ATTEMPT_ENDED:
        return None
    details = _error(response).get("details")
    why = details.get("why") if isinstance(details, dict) else None
    return why if isinstance(why, str) and why else "it is over"


def describe_response(response: ApiResponse) -> str:
    """`HTTP 401 attempt_ended: ...` from the API's error shape, without the body's data."""
    try:
        error = response.json().get("error") or {}
        detail = f"{error.get('code')}: {error.get('message')}"
    except (ValueError, AttributeError):
        detail = response.reason_phrase
    return f"HTTP {response.status_code} {detail}"


class AttemptCallbacks:
    """The API's runner endpoints for one run and attempt."""

    def __init__(
        self,
        api_url: str,
        run_id: str,
        attempt: int,
        token: str,
        *,
        retry: CallRetry | None = None,
        timeout: Timeout | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: Transport | None = None,
    ) -> None:
        self._path = RUNNER_ATTEMPT_PATH.format(run_id=run_id, attempt=attempt)
        # A transport of its own unless one is given (tests play the API with one).
        self._own_transport: HttpTransport | None = None
        if transport is None:
            transport = self._own_transport = HttpTransport(api_url)
        self._transport: Transport = transport
        self._headers = {"Authorization": f"Bearer {token}", "User-Agent": "podtask-runner"}
        self._timeout = timeout or DEFAULT_TIMEOUT
        self._retry = retry or CallRetry()
        self._sleep = sleep

    def close(self) -> None:
        if self._own_transport is not None:
            self._own_transport.close()

    def fetch_attempt(self) -> dict[str, Any]:
        response = self._send("GET", self._path)
        try:
            body = response.json()
        except ValueError:
            raise ApiCallError("the API answered the attempt fetch with invalid JSON") from None
        if not isinstance(body, dict):
            raise ApiCallError("the API answered the attempt fetch with something not an object")
        return body

    def report(self, report: Outcome, *, hurried: bool = False) -> None:
        """Send the report; `hurried` (the pod is being stopped) tries briefly, for the
        grace period Kubernetes gives a stopping pod is short and shared with the hooks."""
        # The output was encoded once already; encoding again cannot fail.
        content = json.dumps(report.to_wire(), separators=(",", ":"), ensure_ascii=False)
        self._send(
            "POST",
            f"{self._path}/complete",
            content.encode(),
            retry=HURRIED_RETRY if hurried else None,
            timeout=HURRIED_TIMEOUT if hurried else None,
        )

    def append_log(self, chunk: LogChunk, *, retry: CallRetry, timeout: Timeout) -> None:
        """Send one chunk of the attempt's output; `retry` is short, for the next flush
        tries again anyway."""
        self._send(
            "POST",
            f"{self._path}/log",
            json.dumps(chunk.to_wire(), ensure_ascii=False).encode(),
            retry=retry,
            timeout=timeout,
        )

    def put_metadata(self, text: str, *, retry: CallRetry, timeout: Timeout) -> None:
        """Send the run's metadata, whole (`text`: its JSON, checked already)."""
        self._send(
            "PUT",
            self._path + RUNNER_METADATA_PATH,
            f'{{"metadata":{text}}}'.encode(),
            retry=retry,
            timeout=timeout,
        )

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        retry: CallRetry | None = None,
        timeout: Timeout | None = None,
    ) -> ApiResponse:
        last_problem = "no attempt made"
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = ApiRequest(method, path, headers, body, timeout or self._timeout)
        for delay in [*(retry or self._retry).delays(), None]:
            try:
                response = self._transport(request)
            except TRANSPORT_ERRORS as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return response
                last_problem = describe_response(response)
                why = ended_attempt(response)
                if why is not None:
                    raise AttemptEnded(f"{method} {path} failed: {last_problem}", why)
                if not is_transient(response):
                    break
            if delay is not None:
                self._sleep(delay)
        raise ApiCallError(f"{method} {path} failed: {last_problem}")
