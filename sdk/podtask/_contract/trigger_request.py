"""The trigger request on the wire: one pydantic model of `POST /api/v1/tasks/{id}/trigger`
(a payload and its options), and the types its fields are made of.

It is the contract between the callers and the API. The API subclasses it with the
checks that need the server's view (`podtask_api.trigger_requests`) and serves it as its
OpenAPI schema; the client and the CLI take the options' names from it
(`podtask._authoring.trigger_options`). Pure: no I/O.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from podtask._contract import durations
from podtask._contract.durations import WIRE_DURATION_PATTERN
from podtask._contract.limits import (
    MAX_CONCURRENCY_KEY_LENGTH,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_PRIORITY,
    MAX_TAG_LENGTH,
    MAX_TAGS,
)
from podtask._contract.machines import PRESETS

_WIRE_DURATION = re.compile(WIRE_DURATION_PATTERN)

Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG_LENGTH)]


def _json_integer(value: Any) -> Any:
    # JSON has one kind of number: 3.0 is the integer 3 (and 3.5 is refused after this), but
    # true and "3" are not numbers, though pydantic's lax mode would take them as 1 and 3.
    if isinstance(value, bool | str):
        raise ValueError("must be an integer")
    return value


JSON_INTEGER = BeforeValidator(_json_integer)
"""Makes an `int` an integer as JSON Schema means it: 3 or 3.0, never true or "3".

Bounds go before it, inside the type (`Annotated[int, Field(ge=…), JSON_INTEGER]`): only
so does `/openapi.json` show them as `minimum` and `maximum`, also for optional fields.
"""

# A century: any longer is a mistake, and far longer would overflow the date arithmetic.
MAX_DELAY_SECONDS = 100 * 365 * 24 * 3600
Priority = Annotated[int, Field(ge=-MAX_PRIORITY, le=MAX_PRIORITY), JSON_INTEGER]
Seconds = Annotated[int, Field(ge=1, le=MAX_DELAY_SECONDS), JSON_INTEGER]
Attempts = Annotated[int, Field(ge=1, le=100), JSON_INTEGER]

_NUMBER = re.compile(r"^\s*[-+]?[0-9]+(\.[0-9]*)?\s*$")
_TIME = TypeAdapter(datetime)


def iso_time(value: Any) -> datetime:
    """An ISO 8601 time (without a zone: UTC) that the date arithmetic can hold."""
    # pydantic would read "90" as a Unix time in 1970, silently meaning "no delay".
    if not isinstance(value, str) or _NUMBER.match(value):
        raise ValueError("a time must be ISO 8601, e.g. 2024-05-01T12:00:00Z")
    try:
        parsed = _TIME.validate_python(value)
    except ValidationError:
        raise ValueError("a time must be ISO 8601, e.g. 2024-05-01T12:00:00Z") from None
    aware = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    try:
        return aware.astimezone(UTC) + timedelta(seconds=0)
    except OverflowError:
        raise ValueError("the time is out of range") from None


def _delay(value: Any) -> int | datetime:
    if isinstance(value, str):
        return iso_time(value)
    # Without this a number that is not a whole one (1.5) or a boolean would be read as a
    # Unix timestamp in 1970, silently meaning "no delay".
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("delay must be whole seconds or a time")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("delay must be whole seconds or a time")
    if value < 0:
        raise ValueError("delay must be zero or more seconds, or a time")
    if value > MAX_DELAY_SECONDS:
        raise ValueError(f"delay must be at most {MAX_DELAY_SECONDS} seconds (100 years)")
    return int(value)


Delay = Annotated[
    int | datetime,
    BeforeValidator(_delay),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_DELAY_SECONDS},
                {"type": "string", "format": "date-time"},
            ]
        }
    ),
]
"""A delay: seconds from now, or the time (ISO 8601; without a zone, UTC)."""

IsoTime = Annotated[datetime, BeforeValidator(iso_time)]
"""A time, in ISO 8601 only (not seconds since 1970), in UTC."""


def duration_seconds(value: Any) -> int:
    """Seconds, given as a number or as a count and a unit: "30s", "10m", "24h", "30d", "2w".

    Any longer than a century is a century: as good as for ever, and it keeps the date
    arithmetic in range.
    """
    if isinstance(value, str):
        if not _WIRE_DURATION.match(value):
            raise ValueError('must be seconds, or a count and a unit: "30s", "10m", "24h", "30d"')
    elif isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise ValueError('must be whole seconds, or a count and a unit: "10m", "24h", "30d"')
    seconds = int(durations.duration_seconds(value))
    if seconds < 1:
        raise ValueError("must be at least 1 second")
    return min(seconds, MAX_DELAY_SECONDS)


IdempotencyKeyTTL = Annotated[
    int,
    BeforeValidator(duration_seconds),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": WIRE_DURATION_PATTERN},
            ]
        }
    ),
]
"""How long a key holds its run: seconds, or a count and a unit (s, m, h, d, w)."""

MachineName = Annotated[str, WithJsonSchema({"type": "string", "enum": list(PRESETS)})]


class WireTriggerOptions(BaseModel):
    """The options of one trigger, as Trigger.dev names them (camelCase on the wire): their
    names, types, bounds and formats. The API adds the checks that need its view."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    metadata: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = Field(
        default=0, description="Runs with a higher priority start first within their queue."
    )
    concurrency_key: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_CONCURRENCY_KEY_LENGTH)]
        | None
    ) = None
    machine: MachineName | None = None
    max_attempts: Attempts | None = Field(
        default=None, description="Overrides the task's retry.maxAttempts."
    )
    max_duration: Seconds | None = Field(default=None, description="Seconds.")
    idempotency_key: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_IDEMPOTENCY_KEY_LENGTH)]
        | None
    ) = None
    ttl: Seconds | None = Field(
        default=None, description="Seconds the run may wait to start before it expires."
    )
    delay: Delay | None = Field(
        default=None, description="Seconds from now, or the time, before the run is queued."
    )
    is_test: StrictBool = Field(
        default=False,
        description="Marks the run as a test run (as the dashboard's Test page does): "
        "`ctx.is_test` in the task, listed with `isTest=true`.",
    )
    idempotency_key_ttl: IdempotencyKeyTTL | None = Field(
        default=None,
        alias="idempotencyKeyTTL",
        description=(
            "How long the idempotency key holds its run: seconds, or a count and a unit "
            '("10m", "24h", "30d"); 30 days by default. A run that ends in any other final '
            "status than Completed releases its key at once."
        ),
    )


class WireTriggerRequest(BaseModel):
    """`POST /api/v1/tasks/{id}/trigger`: a payload and its options."""

    model_config = ConfigDict(extra="forbid")

    payload: Any = None
    options: WireTriggerOptions = Field(default_factory=WireTriggerOptions)


def option_wire_names() -> dict[str, str]:
    """Each option's Python name and its name in the API's JSON: `idempotency_key` and
    `idempotencyKey`, in the model's order."""
    return {name: field.alias or name for name, field in WireTriggerOptions.model_fields.items()}
