"""Durations: the one reading of "how long" in podtask, for the CLI, the API, the client and
task declarations.

A duration is a number of seconds, a `timedelta`, or a text: a number and a unit
(`500ms`, `90s`, `1.5m`, `2h`, `1d`, `2w`; a bare number is seconds). `duration_seconds`
reads any of them; each caller then says what it accepts on top (whole seconds, at least
one, a text at all), since a CLI flag, a wire field and a task option differ there.

The API's JSON takes a text duration in one stricter form only, a whole count and a unit
(`WIRE_DURATION_PATTERN`, what `/openapi.json` documents): it is a subset of the above.
"""

from __future__ import annotations

import re
from datetime import timedelta

UNIT_SECONDS: dict[str, float] = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 24 * 3600,
    "w": 7 * 24 * 3600,
}
_TEXT = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?$")
WIRE_DURATION_PATTERN = r"^[1-9][0-9]{0,8}[smhdw]$"
TEXT_FORMS = "seconds, or a number with ms, s, m, h, d or w (e.g. 90s, 5m, 2h)"


class DurationError(ValueError):
    """Not a duration; the message says what one looks like."""


def duration_seconds(value: object) -> float:
    """Seconds in `value`: a number of seconds, a `timedelta`, or a text such as "90s"."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        found = _TEXT.match(value.strip())
        if found is not None:
            return float(found.group(1)) * UNIT_SECONDS[found.group(2) or "s"]
        raise DurationError(f"{value!r} is not a duration: {TEXT_FORMS}")
    raise DurationError(f"{value!r} is not a duration: seconds, a timedelta or a text")
