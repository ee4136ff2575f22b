"""The metadata of the run a task runs in, as Trigger.dev's `metadata`: read and change it
while the task runs; the run's view (`GET /api/v1/runs/{id}`, the dashboard) shows it.

    from podtask import metadata, task

    @task(id="import-rows")
    def import_rows(payload, ctx):
        rows = payload["rows"]
        for done, row in enumerate(rows, 1):
            ...
            metadata.set("progress", done / len(rows))  # a number from 0 to 1
        metadata.increment("imported", len(rows)).append("log", "imported")

The functions act on the current attempt's run; `ctx.metadata` is the same object (a
mapping of the document, with the same methods). The document starts as the trigger's
`metadata` (or as an earlier attempt of the run left it), is a JSON object of at most
256 KiB (a change that would make it larger raises `ValueError` and is not made), and is
sent to the API at most once a second while it changes, and once more before the attempt
ends (`flush()` sends it at once). Thread-safe. Outside a task's run there is no run to
change: every function raises `RuntimeError`.
"""

from __future__ import annotations

from typing import Any

from podtask._authoring.context import current_context
from podtask._authoring.run_metadata import Number, RunMetadata
from podtask._contract.run_metadata import PROGRESS_KEY

__all__ = [
    "PROGRESS_KEY",
    "RunMetadata",
    "append",
    "current",
    "decrement",
    "delete",
    "flush",
    "get",
    "increment",
    "remove",
    "set",
]


def _run_metadata() -> RunMetadata:
    ctx = current_context()
    if ctx is None:
        raise RuntimeError(
            "podtask.metadata is the metadata of the run a task runs in, and no task runs "
            "here: call it from a task (or its hooks) as it runs in a pod, `podtask dev` or "
            "`python -m podtask_runner --local`; to set a run's first metadata, trigger it "
            "with `metadata={...}`"
        )
    return ctx.metadata


def set(key: str, value: Any) -> RunMetadata:  # Trigger.dev's name, shadowing the builtin here
    """Set `key` to `value` (anything JSON holds; a pydantic model as its JSON)."""
    return _run_metadata().set(key, value)


def delete(key: str) -> RunMetadata:
    """Remove `key`, if it is there."""
    return _run_metadata().delete(key)


def increment(key: str, by: Number = 1) -> RunMetadata:
    """Add `by` to the number under `key` (0 when absent)."""
    return _run_metadata().increment(key, by)


def decrement(key: str, by: Number = 1) -> RunMetadata:
    """Subtract `by` from the number under `key` (0 when absent)."""
    return _run_metadata().decrement(key, by)


def append(key: str, value: Any) -> RunMetadata:
    """Add `value` at the end of the list under `key` (a new list when absent)."""
    return _run_metadata().append(key, value)


def remove(key: str, value: Any) -> RunMetadata:
    """Remove every item equal to `value` from the list under `key`."""
    return _run_metadata().remove(key, value)


def get(key: str, default: Any = None) -> Any:
    """The value under `key` (a copy), or `default`."""
    return _run_metadata().get(key, default)


def current() -> dict[str, Any]:
    """The whole document, as a new dict."""
    return _run_metadata().current()


def flush() -> None:
    """Send the document to the API now, and return once it was."""
    _run_metadata().flush()
