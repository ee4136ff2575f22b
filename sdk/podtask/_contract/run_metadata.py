"""A run's metadata while it runs (Trigger.dev's `metadata`): the document the task writes
(`podtask.metadata`), the runner sends and the API keeps in `status.metadata`.

The document is one JSON object. The runner sends it whole, at most once every
`SEND_INTERVAL_SECONDS` while it changes and once more before the attempt reports, with
`PUT …/attempts/{attempt}/metadata` (`{"metadata": document}`); the API stores it whole, in
place of the one before. It may take at most `MAX_RUN_METADATA_BYTES` as Kubernetes stores it: the
task hears of a change that would make it larger at once (`metadata_text`), and the API
refuses a larger one (413) by the same rule. Pure, and without pydantic: a task pod
imports it before its task runs.
"""

from __future__ import annotations

from typing import Any

from podtask._contract.json_values import JsonValueError, checked_json_text, stored_size
from podtask._contract.limits import MAX_RUN_METADATA_BYTES

# How often at most the runner sends the document while the task changes it.
SEND_INTERVAL_SECONDS = 1.0
# The convention for a run's progress: a number from 0 to 1 under this key.
PROGRESS_KEY = "progress"


def too_large_message(size: int) -> str:
    return (
        f"the run's metadata would be {size} bytes of JSON, over the limit of "
        f"{MAX_RUN_METADATA_BYTES} bytes ({MAX_RUN_METADATA_BYTES // 1024} KiB); keep large "
        "data elsewhere and put a reference in the metadata"
    )


def metadata_text(document: dict[str, Any]) -> str:
    """The document as compact JSON text, once it is known a run can hold it; `ValueError`
    (a `JsonValueError` naming the place, or the size) when it cannot."""
    try:
        text = checked_json_text(document)
    except JsonValueError as exc:
        raise JsonValueError(exc.problem.at("metadata")) from None
    size = stored_size(text)
    if size > MAX_RUN_METADATA_BYTES:
        raise ValueError(too_large_message(size))
    return text
