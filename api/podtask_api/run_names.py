"""Run ids: a fresh one for a run triggered without an idempotency key, or the id every
trigger of one task and key computes alike.

A run triggered without a key gets `run-` + its creation time counted down (so that
Kubernetes, which lists objects in name order, lists the newest first) + random
characters. A run with a key gets `run-k<hash of task and key>-<n>`: the n-th run of that
key, n = 1, 2, … (`idempotency` says when a key passes to its next run). That name is what
makes concurrent identical triggers meet: all of them try to create the same object, and
all but one get an AlreadyExists. Pure, but for the clock and the random characters.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from podtask._contract.run_ids import RUN_NAME_PREFIX, SUFFIX_DIGITS, base36, time_countdown

KEYED_RUN_PREFIX = RUN_NAME_PREFIX + "k"
_KEY_HASH_IN_NAME = 16


def random_run_name(now: datetime | None = None) -> str:
    """A fresh run id whose name order is newest first: a countdown of `now`, then random."""
    # One draw for all the characters (uniform, as a choice per character would be, at an
    # eighth of the cost: this is on every trigger's path).
    suffix = base36(secrets.randbelow(36**SUFFIX_DIGITS), SUFFIX_DIGITS)
    return RUN_NAME_PREFIX + time_countdown(now or datetime.now(UTC)) + suffix


def key_digest(task_id: str, idempotency_key: str) -> str:
    """The hash of a task and an idempotency key, which its runs' ids and label carry."""
    return hashlib.sha256(f"{task_id}\0{idempotency_key}".encode()).hexdigest()


def idempotent_run_name(task_id: str, idempotency_key: str, generation: int) -> str:
    """The id of the `generation`-th run of this task and key: the same for every trigger."""
    digest = key_digest(task_id, idempotency_key)[:_KEY_HASH_IN_NAME]
    return f"{KEYED_RUN_PREFIX}{digest}-{generation}"


def run_generation(name: str, task_id: str, idempotency_key: str) -> int | None:
    """Which run of this task and key `name` is (1, 2, …); None if it is not one of them."""
    stem = idempotent_run_name(task_id, idempotency_key, 0)[:-1]
    number = name[len(stem) :] if name.startswith(stem) else ""
    return int(number) if number.isdigit() and not number.startswith("0") else None
