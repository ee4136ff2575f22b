"""Retry maths: how long to wait before the next attempt of a run.

`min(max_timeout, min_timeout * factor^(n-1) * (1 + random))`, the random part
only when the policy randomizes, exactly as Trigger.dev documents it.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from datetime import datetime, timedelta

from podtask.resources import RetryPolicy


def retry_delay_ms(
    policy: RetryPolicy, attempt: int, random: Callable[[], float] = _random.random
) -> int:
    """Milliseconds to wait after failed attempt number `attempt` (1-based)."""
    jitter = 1 + random() if policy.randomize else 1
    delay = policy.min_timeout_ms * policy.factor ** (attempt - 1) * jitter
    return round(min(policy.max_timeout_ms, delay))


def next_retry_at(
    policy: RetryPolicy,
    attempt: int,
    now: datetime,
    random: Callable[[], float] = _random.random,
) -> datetime:
    return now + timedelta(milliseconds=retry_delay_ms(policy, attempt, random))
