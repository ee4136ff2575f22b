"""`idempotency_keys.create`: idempotency keys scoped to the run (or attempt) that triggers.

As Trigger.dev's `idempotencyKeys.create(key, { scope })`: the key (a string, or a list of
strings) is hashed together with what its scope names, so that the same code in another run
makes another key:

- `"run"` (the default inside a task): with the triggering run's id, the same on every attempt
  of it: a retried parent that triggers again with it gets the child it triggered before;
- `"attempt"`: with the run's id and the attempt number: each attempt triggers its own child;
- `"global"`: the key alone: one run for it, whoever triggers it.

Outside a task, `"run"` and `"attempt"` have nothing to add: the key is then global. A plain
string given as `idempotency_key=` is used as it is (global), as before.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Literal, get_args

from podtask._authoring.context import current_context
from podtask._contract.wire import ENV_ATTEMPT, ENV_RUN_ID

IdempotencyKeyScope = Literal["run", "attempt", "global"]
SCOPES: tuple[str, ...] = get_args(IdempotencyKeyScope)


class IdempotencyKey(str):
    """A key made by `idempotency_keys.create`: the sha256 (hex) of its parts."""

    __slots__ = ()


def _running_attempt() -> tuple[str, int] | None:
    """The run id and attempt this code runs in: its context, else (in a thread of its own,
    which does not see the context) the task pod's environment."""
    ctx = current_context()
    if ctx is not None:
        return ctx.run_id, ctx.attempt
    run_id, attempt = os.environ.get(ENV_RUN_ID), os.environ.get(ENV_ATTEMPT)
    if run_id and attempt and attempt.isdigit():
        return run_id, int(attempt)
    return None


def _parts(key: str | Sequence[str]) -> list[str]:
    parts = [key] if isinstance(key, str) else list(key)
    if not parts or not all(isinstance(part, str) and part for part in parts):
        raise ValueError(f"an idempotency key is a non-empty string or a list of them, not {key!r}")
    return parts


def scoped_parts(
    key: str | Sequence[str], scope: str, attempt: tuple[str, int] | None
) -> list[str]:
    """What a key of `scope` is made of, for code running in `attempt` (None: outside)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown idempotency key scope {scope!r}; use one of {', '.join(SCOPES)}")
    parts = _parts(key)
    if attempt is None or scope == "global":
        return parts
    run_id, number = attempt
    return [*parts, run_id] if scope == "run" else [*parts, run_id, str(number)]


def create(key: str | Sequence[str], *, scope: IdempotencyKeyScope = "run") -> IdempotencyKey:
    """An idempotency key for `key` in `scope` (`"run"`, `"attempt"` or `"global"`): pass it
    as `idempotency_key=` when triggering."""
    parts = scoped_parts(key, scope, _running_attempt())
    return IdempotencyKey(hashlib.sha256("-".join(parts).encode()).hexdigest())


class IdempotencyKeys:
    """`idempotency_keys.create(key, scope=...)`, the way Trigger.dev spells it."""

    create = staticmethod(create)


idempotency_keys = IdempotencyKeys()
