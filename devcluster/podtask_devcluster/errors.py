"""API errors and their wire form, the `Status` object the real API server answers with."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from typing import Any


@dataclass(eq=False)
class StatusError(Exception):
    """A failed API request, as kube-apiserver's `StatusError`: `code` is its HTTP status, and
    `status()` the `Status` body a Kubernetes client expects. (The podtask API's errors are
    `podtask_api.errors`, whose `code` is a word.)"""

    code: int
    reason: str
    message: str
    _: KW_ONLY
    name: str | None = None
    group: str | None = None
    kind: str | None = None
    causes: list[dict[str, str]] | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def status(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name is not None:
            details["name"] = self.name
        if self.group:  # omitempty: the core group is not named
            details["group"] = self.group
        if self.kind is not None:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = self.causes
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if not self.reason:
            # StatusReasonUnknown is the empty string, which the real server omits.
            del body["reason"]
        if details:
            body["details"] = details
        return body


def qualified(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def _object_error(
    code: int, reason: str, group: str, plural: str, name: str, message: str
) -> StatusError:
    """An error about one object, its details naming it as kube's `NewNotFound` & co. do."""
    return StatusError(code, reason, message, name=name, group=group, kind=plural)


def not_found(group: str, plural: str, name: str) -> StatusError:
    message = f'{qualified(group, plural)} "{name}" not found'
    return _object_error(404, "NotFound", group, plural, name, message)


def already_exists(group: str, plural: str, name: str) -> StatusError:
    message = f'{qualified(group, plural)} "{name}" already exists'
    return _object_error(409, "AlreadyExists", group, plural, name, message)


def conflict(group: str, plural: str, name: str, why: str | None = None) -> StatusError:
    why = why or (
        "the object has been modified; please apply your changes to the latest version "
        "and try again"
    )
    message = f'Operation cannot be fulfilled on {qualified(group, plural)} "{name}": {why}'
    return _object_error(409, "Conflict", group, plural, name, message)


def invalid(group: str, kind: str, name: str, field: str, detail: str) -> StatusError:
    return StatusError(
        422,
        "Invalid",
        f'{qualified(group, kind)} "{name}" is invalid: {field}: {detail}',
        name=name,
        group=group,
        kind=kind,
        causes=[{"reason": "FieldValueInvalid", "message": detail, "field": field}],
    )


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def method_not_allowed(message: str) -> StatusError:
    return StatusError(405, "MethodNotAllowed", message)


def gone(message: str) -> StatusError:
    # The real server answers "too old resource version" with reason Expired and code 410;
    # clients (kopf, client-go, the python client) key on the code.
    return StatusError(410, "Expired", message)


def unsupported_media_type(message: str) -> StatusError:
    return StatusError(415, "UnsupportedMediaType", message)


def not_acceptable(message: str) -> StatusError:
    return StatusError(406, "NotAcceptable", message)
