"""The client's settings and failures: where the API is, which credential to send, and the
errors a call raises (refused, unreachable, not configured, not finished in time).

Pure: `ClientConfig.resolve` reads a given mapping, not the process environment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podtask._contract.wire import ENV_API_KEY, ENV_API_URL, ENV_ATTEMPT_TOKEN
from podtask.errors import PodtaskError

DEFAULT_TIMEOUT_SECONDS = 30.0
# Answers that say "not now" rather than "no": a wait rides them out.
_TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})


class PodtaskApiError(PodtaskError):
    """The API refused or failed a request: its HTTP status, error code, message and details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{message} (HTTP {status}, {code})")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    @property
    def is_transient(self) -> bool:
        return self.status in _TRANSIENT_STATUSES


class PodtaskConnectionError(PodtaskError):
    """The API could not be reached (or did not answer in time)."""


class ClientNotConfiguredError(PodtaskError):
    """No API address is known: neither given nor in `PODTASK_API_URL`."""


class RunWaitTimeoutError(PodtaskError, TimeoutError):
    """Runs still not finished when a wait's timeout passed; `run_ids` are those runs."""

    def __init__(self, run_ids: Sequence[str], timeout: float) -> None:
        self.run_ids = list(run_ids)
        shown = ", ".join(self.run_ids[:5]) + (" …" if len(self.run_ids) > 5 else "")
        super().__init__(f"{len(self.run_ids)} run(s) not finished after {timeout:g}s: {shown}")


def api_error(status: int, body: Any, text: str) -> PodtaskApiError:
    """The error an API answer stands for: its `{"error": {...}}` if it has one."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return PodtaskApiError(
            status, str(error.get("code") or "error"), error["message"], error.get("details")
        )
    return PodtaskApiError(status, "http_error", text[:500] or f"HTTP {status}")


def read_answer(status: int, body: Any, text: str) -> Any:
    """The JSON of a successful answer (`body`, None when it is not JSON); else its error."""
    if 200 <= status < 300 and body is not None:
        return body
    if 200 <= status < 300:
        raise PodtaskApiError(status, "invalid_answer", "the answer is not JSON")
    raise api_error(status, body, text)


def is_passing_trouble(error: PodtaskError) -> bool:
    """Whether a poll that failed so may simply be tried again later (the API restarting)."""
    if isinstance(error, PodtaskConnectionError):
        return True
    return isinstance(error, PodtaskApiError) and error.is_transient


@dataclass(frozen=True)
class ClientConfig:
    """Where the API is, and the credential to send: an API key, else an attempt token."""

    api_url: str
    api_key: str | None = field(default=None, repr=False)
    attempt_token: str | None = field(default=None, repr=False)

    @classmethod
    def resolve(
        cls,
        env: Mapping[str, str],
        *,
        api_url: str | None = None,
        api_key: str | None = None,
        attempt_token: str | None = None,
    ) -> ClientConfig:
        """Each setting as given, else from `env`. One credential is sent: a given one first
        (API key, else attempt token), else `PODTASK_API_KEY`, else `PODTASK_ATTEMPT_TOKEN`."""
        url = api_url or env.get(ENV_API_URL)
        if not url:
            raise ClientNotConfiguredError(
                f"the podtask API address is not configured: set {ENV_API_URL} (and "
                f"{ENV_API_KEY}), or call podtask.client.configure(api_url=..., api_key=...)"
            )
        if api_key or attempt_token:
            key, token = api_key or None, None if api_key else attempt_token
        else:
            key = env.get(ENV_API_KEY) or None
            token = None if key else (env.get(ENV_ATTEMPT_TOKEN) or None)
        return cls(api_url=url.rstrip("/"), api_key=key, attempt_token=token)

    @property
    def headers(self) -> dict[str, str]:
        credential = self.api_key or self.attempt_token
        return {"Authorization": f"Bearer {credential}"} if credential else {}

    def url(self, path: str) -> str:
        return self.api_url + path
