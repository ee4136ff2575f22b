"""What a trigger sends: the options as Python keywords, and their JSON on the wire.

Pure. The wire's names, types and checks are `podtask._contract.trigger_request`'s model; this is
the Python side of it, for the client, the CLI and `Task.trigger`. Options are snake_case
keyword arguments in Python (`idempotency_key=`) and camelCase in the API's JSON
(`idempotencyKey`); durations may be seconds or `timedelta`s, a delay may also be a
`datetime`. Payloads are anything JSON can hold, pydantic models included (sent as
`model_dump(mode="json")`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypedDict, cast

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_jsonable_python

from podtask._contract.durations import DurationError, duration_seconds
from podtask._contract.limits import MAX_BATCH_ITEMS
from podtask._contract.resources import format_timestamp
from podtask._contract.trigger_request import option_wire_names

Seconds = int | float | timedelta


class TriggerOptions(TypedDict, total=False):
    """The options of one trigger (Trigger.dev's, in snake_case). All optional.

    - `delay`: seconds (or a timedelta) from now, or a `datetime`, before the run is queued;
      a naive datetime is local time.
    - `ttl`: seconds the run may wait to start before it expires.
    - `idempotency_key`: the same key for the same task returns the existing run, while
      that run is not finished or Completed (a run that failed, crashed, was canceled,
      expired or timed out releases its key), within `idempotency_key_ttl`.
    - `idempotency_key_ttl`: how long the key holds its run: seconds (or a timedelta), or
      a string such as "10m", "24h", "30d"; 30 days by default.
    - `concurrency_key`: a separate concurrency slot count per key within the queue.
    - `machine`: a machine preset name, instead of the task's.
    - `max_attempts`: instead of the task's `retry.max_attempts`.
    - `max_duration`: seconds an attempt may run, instead of the task's.
    - `tags`: up to 10 strings (or one string); `metadata`: a JSON object.
    - `priority`: runs with a higher priority start first within their queue.
    - `is_test`: a test run (`ctx.is_test` in the task; lists can show test runs only).
    """

    delay: Seconds | datetime
    ttl: Seconds
    idempotency_key: str
    idempotency_key_ttl: Seconds | str
    concurrency_key: str
    machine: str
    max_attempts: int
    max_duration: Seconds
    tags: str | Sequence[str]
    metadata: Mapping[str, Any]
    priority: int
    is_test: bool


# The order the options are listed in when one is unknown: as documented above.
_KEYWORD_ORDER = tuple(TriggerOptions.__annotations__)


# The Python names and the JSON names, from the wire model: the keyword options above are
# its fields (a test holds them together).
_WIRE_NAMES = option_wire_names()
_SECONDS = {"delay", "ttl", "max_duration", "idempotency_key_ttl"}


def _whole_seconds(name: str, value: Any) -> int:
    try:
        # A text ("1h") is the CLI's to read, not a keyword's: only numbers and timedeltas.
        seconds = None if isinstance(value, str) else duration_seconds(value)
    except DurationError:
        seconds = None
    if seconds is None:
        raise TypeError(f"trigger option {name!r} must be seconds or a timedelta, not {value!r}")
    # Rounded up: the API counts whole seconds, and half a second of ttl is not none.
    return math.ceil(seconds)


def _wire_value(name: str, value: Any) -> Any:
    if name == "delay" and isinstance(value, datetime):
        return format_timestamp(value)
    if name == "idempotency_key_ttl" and isinstance(value, str):
        return value  # "10m", "24h": the API reads the unit
    if name in _SECONDS:
        return _whole_seconds(name, value)
    if name == "tags":
        return [value] if isinstance(value, str) else list(value)
    if name == "metadata":
        return to_json_value(dict(value), what="the metadata")
    return value


def options_to_wire(options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` as the API's JSON, camelCase; unset (None) options are left out.

    Values are not checked here beyond their Python types: the API checks them (as
    `podtask._contract.trigger_request` and its server-side checks say) and names what to fix.
    """
    unknown = sorted(set(options) - set(_WIRE_NAMES))
    if unknown:
        raise TypeError(
            f"unknown trigger option(s) {', '.join(map(repr, unknown))}; valid options are: "
            + ", ".join(_KEYWORD_ORDER)
        )
    return {
        _WIRE_NAMES[name]: _wire_value(name, value)
        for name, value in options.items()
        if value is not None
    }


def to_json_value(value: Any, *, what: str = "the payload") -> Any:
    """`value` as plain JSON data: pydantic models dumped in JSON mode, dates as ISO strings."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    try:
        return to_jsonable_python(value)
    except PydanticSerializationError as exc:
        raise TypeError(f"{what} cannot be sent as JSON: {exc}") from None


def trigger_body(payload: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """The body of `POST /api/v1/tasks/{id}/trigger`."""
    body: dict[str, Any] = {"payload": to_json_value(payload)}
    wire = options_to_wire(options)
    if wire:
        body["options"] = wire
    return body


@dataclass(frozen=True)
class BatchItem:
    """One item of a batch trigger: a payload and its own options."""

    payload: Any = None
    options: TriggerOptions = field(default_factory=lambda: TriggerOptions())


_ITEM_KEYS = ({"payload"}, {"payload", "options"})


def as_batch_item(item: Any) -> BatchItem:
    """A `BatchItem`; a mapping of exactly `payload` (and `options`) is one; else a payload.

    The mapping form is Trigger.dev's item shape. To send a payload that happens to have
    exactly those keys, wrap it: `BatchItem(payload={"payload": ...})`.
    """
    if isinstance(item, BatchItem):
        return item
    if isinstance(item, Mapping) and set(item) in _ITEM_KEYS:
        options = item.get("options") or {}
        if not isinstance(options, Mapping):
            raise TypeError(f"the options of a batch item must be a mapping, not {options!r}")
        return BatchItem(payload=item["payload"], options=cast(TriggerOptions, dict(options)))
    return BatchItem(payload=item)


def batch_body(task_id: str, items: Iterable[Any]) -> dict[str, Any]:
    """The body of `POST /api/v1/tasks/batch` for `items` of one task, in order."""
    wire_items = []
    for index, item in enumerate(items):
        if index == MAX_BATCH_ITEMS:
            raise ValueError(
                f"a batch may hold at most {MAX_BATCH_ITEMS} items; split it into several batches"
            )
        try:
            batch_item = as_batch_item(item)
            wire_items.append(
                {"task": task_id, **trigger_body(batch_item.payload, batch_item.options)}
            )
        except TypeError as exc:
            raise TypeError(f"batch item {index}: {exc}") from None
    return {"items": wire_items}
