"""The JSON patches (RFC 6902) that write the status of podtask's objects: how the API and
the operator set a field, clear one, and pin a write to the version it was decided from.

Not merge patches (RFC 7386): a merge patch reads a null at any depth as "remove this key",
so a task's output or metadata written that way would lose every null it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def status_set(status: Any, field: str, value: Any) -> dict[str, Any]:
    """The operation that sets `status.<field>` to `value` wholesale, on an object whose status
    (as read) is `status`: an object holds no status until something first writes one."""
    if isinstance(status, Mapping):
        return {"op": "add", "path": f"/status/{field}", "value": value}
    return {"op": "add", "path": "/status", "value": {field: value}}


def status_changes(status: Any, changes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The operations that set each field of `changes` wholesale, and remove the ones it sets to
    None, on an object whose status (as read) is `status`.

    A field to remove that the status does not hold is left out: JSON patch refuses to remove
    what is not there, and what is not there is already as wanted.
    """
    kept = {field: value for field, value in changes.items() if value is not None}
    if not isinstance(status, Mapping):
        return [{"op": "add", "path": "/status", "value": kept}] if kept else []
    return [
        *(
            {"op": "add", "path": f"/status/{field}", "value": value}
            for field, value in kept.items()
        ),
        *(
            {"op": "remove", "path": f"/status/{field}"}
            for field, value in changes.items()
            if value is None and field in status
        ),
    ]


def status_update(
    status: Any,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    leave: frozenset[str] = frozenset(),
) -> list[dict[str, Any]]:
    """The operations from status `before` to status `after` (both as stored, e.g. a
    `TaskRunStatus.to_wire()`), on an object whose status (as read) is `status`: each changed
    field set wholesale, each one gone removed; the fields in `leave` untouched, whoever owns
    them. Nothing when nothing changed: a write that changes nothing is not sent."""
    changes: dict[str, Any] = {k: v for k, v in after.items() if before.get(k) != v}
    changes.update({k: None for k in before if k not in after})
    for field in leave:
        changes.pop(field, None)
    return status_changes(status, changes)


def version_pin(resource_version: str) -> dict[str, Any]:
    """The operation that makes a JSON patch apply only onto that version of the object.

    Kubernetes takes a resourceVersion in the patched object as a precondition, whatever the
    kind of patch: a write onto any other version is refused with 409 Conflict.
    """
    return {"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version}
