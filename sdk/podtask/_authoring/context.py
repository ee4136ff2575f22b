"""`Context`: what a running task knows about its run, attempt and machine.

The runner builds one `Context` per attempt and hands it to `run` and to every hook
as `ctx`. It is frozen: a task cannot rebind what the platform told it. The one
field the task itself supplies, `init` (what the task's `init` hook returned), is
filled in by the runner with `dataclasses.replace` once `init` has run, so hooks
before that (`on_start`, `init` itself) see `ctx.init` as None.

`current_context()` gives the same object to code that was not handed `ctx`, such
as the client triggering a child run from inside a task, or `podtask.metadata`; in the
threads a task starts too (a new thread does not inherit context variables, so the
attempt's context is also kept for the process while it runs: one attempt per process).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from podtask._authoring.run_metadata import RunMetadata


@dataclass(frozen=True)
class MachineContext:
    """The machine preset this attempt runs on: vCPUs and memory in GB."""

    name: str
    cpu: float
    memory_gb: float


@dataclass(frozen=True)
class Context:
    """One attempt of one run, as the task sees it.

    `started_at` is when this attempt started (timezone-aware). `tags` are the trigger's.
    `metadata` is the run's metadata (`RunMetadata`, what `podtask.metadata` changes): a
    mapping of the trigger's metadata, or of what an earlier attempt left, with methods
    that change it while the task runs (`ctx.metadata.set("progress", 0.5)`); a plain
    mapping given here is made one. `concurrency_key`, `idempotency_key` and
    `parent_run_id` are None when the trigger gave none. `is_test` is True for a test run
    (the dashboard's Test page, `podtask trigger --test`). `init` is what the `init` hook
    returned.
    """

    run_id: str
    attempt: int
    task_id: str
    queue: str
    machine: MachineContext
    started_at: datetime
    tags: list[str] = field(default_factory=list)
    metadata: RunMetadata = field(default_factory=RunMetadata)
    concurrency_key: str | None = None
    idempotency_key: str | None = None
    parent_run_id: str | None = None
    is_test: bool = False
    init: Any = None

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, RunMetadata):
            # Frozen: the one field made here, before anyone has seen the object.
            object.__setattr__(self, "metadata", RunMetadata(self.metadata))


_current: ContextVar[Context | None] = ContextVar("podtask_current_context", default=None)
# The context of the attempt this process runs, for the threads its task starts.
_process_context: Context | None = None


def current_context() -> Context | None:
    """The context of the attempt running in this process, or None outside of one."""
    return _current.get() or _process_context


@contextmanager
def running_in(ctx: Context) -> Iterator[None]:
    """Make `ctx` what `current_context()` returns for the code run inside this block, and
    in the threads it starts."""
    global _process_context
    token = _current.set(ctx)
    outer, _process_context = _process_context, ctx
    try:
        yield
    finally:
        _process_context = outer
        _current.reset(token)


def publish_context(ctx: Context) -> None:
    """Make `ctx` the current context from here on, in this thread or asyncio task (and
    for the process, inside `running_in`).

    The runner calls it when `ctx` changes (after `init`) and inside each async call,
    whose asyncio context is separate from the thread's.
    """
    global _process_context
    _current.set(ctx)
    if _process_context is not None:
        _process_context = ctx
