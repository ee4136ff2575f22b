"""The room a JSON value (a payload, an output, a run's metadata) takes in a TaskRun as
Kubernetes stores it, and the refusal of one a TaskRun cannot hold. Pure.
"""

from __future__ import annotations

from typing import Any

from podtask._contract.json_values import JsonValueError, checked_json_text, stored_size
from podtask._contract.limits import MAX_PAYLOAD_BYTES, MAX_RUN_METADATA_BYTES
from podtask._contract.run_metadata import too_large_message
from podtask_api.errors import ApiError


def encoded_size(value: Any, field: str) -> int:
    """The bytes `value` takes in the TaskRun as Kubernetes stores it; a 422 naming the place
    in it a TaskRun cannot hold (NaN, nested over `MAX_JSON_DEPTH`, a lone surrogate, …)."""
    try:
        text = checked_json_text(value)
    except JsonValueError as exc:
        problem = exc.problem.at(field)
        raise ApiError(
            422,
            f"invalid_{field}",
            f"invalid {problem.path} — {problem.message}",
            [{"field": problem.path, "message": problem.message, "type": problem.kind}],
        ) from None
    return stored_size(text)


def check_payload_size(payload: Any, limit: int = MAX_PAYLOAD_BYTES) -> None:
    size = encoded_size(payload, "payload")
    if size > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"the payload is {size} bytes of JSON, over the limit of {limit} bytes "
            f"({limit // 1024} KiB); pass a reference to large data instead",
            {"size": size, "limit": limit},
        )


def check_run_metadata_size(metadata: dict[str, Any]) -> None:
    """A 413 for a run's metadata over `MAX_RUN_METADATA_BYTES` (the rule the task's
    `podtask.metadata` applies before it sends it), a 422 for what a run cannot hold."""
    size = encoded_size(metadata, "metadata")
    if size > MAX_RUN_METADATA_BYTES:
        raise ApiError(
            413,
            "metadata_too_large",
            too_large_message(size),
            {"size": size, "limit": MAX_RUN_METADATA_BYTES},
        )
