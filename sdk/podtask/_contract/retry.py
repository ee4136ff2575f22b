"""Retry policy: how long to wait before the next attempt of a run, and on which machine.

`min(max_timeout, min_timeout * factor^(n-1) * (1 + random))`, the random part
only when the policy randomizes, exactly as Trigger.dev documents it.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from datetime import datetime, timedelta

from podtask._contract.resources import RetryPolicy, TaskRunSpec, TaskRunStatus


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


def next_attempt_machine(spec: TaskRunSpec, status: TaskRunStatus) -> str:
    """The machine for the attempt after `status.attempt`: after an OOM, the policy's bigger
    machine if it names one."""
    if status.attempts and status.attempts[-1].reason == "OOMKilled":
        oom = spec.retry.out_of_memory
        if oom is not None and oom.machine:
            return oom.machine
    return status.machine or spec.machine
