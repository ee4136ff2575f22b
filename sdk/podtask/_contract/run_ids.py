"""The shape of a run id, which the API (`podtask_api.run_names`) and the operator's
schedules (`podtask._contract.schedules.tick_run_name`) both mint.

A run id is `run-` + a countdown of its time in 9 base36 digits (Kubernetes lists objects in
name order: the newest first) + 8 more characters; a run triggered with an idempotency key
is `run-k…` instead.
"""

from __future__ import annotations

import hashlib
import string
from datetime import datetime

RUN_NAME_PREFIX = "run-"
# Digits before letters, as in ASCII: fixed-width numbers in this alphabet sort as numbers.
BASE36 = string.digits + string.ascii_lowercase
TIME_DIGITS = 9
# The countdown starts here: ids begin with a digit (before the keyed runs' `k`) until the
# year 2863.
_TIME_SPAN_MS = 10 * 36**8
SUFFIX_DIGITS = 8


def base36(number: int, width: int) -> str:
    """`number` in `width` base36 digits (its lowest ones, when it has more)."""
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 36)
        digits.append(BASE36[digit])
    return "".join(reversed(digits))


def digest_base36(text: str, width: int) -> str:
    """`width` base36 characters of sha256(`text`): the same for the same text everywhere."""
    return base36(int.from_bytes(hashlib.sha256(text.encode()).digest(), "big"), width)


def time_countdown(moment: datetime) -> str:
    """The part of a run id that orders it: `moment` counted down, newest first."""
    millis = int(moment.timestamp() * 1000)
    countdown = min(max(_TIME_SPAN_MS - 1 - millis, 0), _TIME_SPAN_MS - 1)
    return base36(countdown, TIME_DIGITS)
