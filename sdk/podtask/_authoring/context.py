"""`Context`: what a running task knows about its run, attempt and machine.

The runner builds one `Context` per attempt and hands it to `run` and to every hook
as `ctx`. It is frozen: a task cannot rebind what the platform told it. The one
field the task itself supplies, `init` (what the task's `init` hook returned), is
filled in by the runner with `dataclasses.replace` once `init` has run, so hooks
before that (`on_start`, `init` itself) see `ctx.init` as None.

`current_context()` gives the same object to code that was not handed `ctx`, such
as the client triggering a child run from inside a task.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class MachineContext:
    """The machine preset this attempt runs on: vCPUs and memory in GB."""

    name: str
    cpu: float
    memory_gb: float


@dataclass(frozen=True)
class Context:
    """One attempt of one run, as the task sees it.

    `started_at` is when this attempt started (timezone-aware). `tags` and `metadata`
    are the trigger's; `concurrency_key`, `idempotency_key` and `parent_run_id` are
    None when the trigger gave none. `init` is what the `init` hook returned.
    """

    run_id: str
    attempt: int
    task_id: str
    queue: str
    machine: MachineContext
    started_at: datetime
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    concurrency_key: str | None = None
    idempotency_key: str | None = None
    parent_run_id: str | None = None
    is_test: bool = False
    init: Any = None


_current: ContextVar[Context | None] = ContextVar("podtask_current_context", default=None)


def current_context() -> Context | None:
    """The context of the attempt running in this process, or None outside of one."""
    return _current.get()


@contextmanager
def running_in(ctx: Context) -> Iterator[None]:
    """Make `ctx` what `current_context()` returns for the code run inside this block."""
    token = _current.set(ctx)
    try:
        yield
    finally:
        _current.reset(token)


def publish_context(ctx: Context) -> None:
    """Make `ctx` the current context from here on, in this thread or asyncio task.

    The runner calls it when `ctx` changes (after `init`) and inside each async call,
    whose asyncio context is separate from the thread's.
    """
    _current.set(ctx)
