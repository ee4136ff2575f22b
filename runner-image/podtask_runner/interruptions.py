"""SIGTERM and the max-duration alarm, turned into an exception inside the task's code.

Kubernetes stops a pod (cancel, eviction, deletion) with SIGTERM and kills it a grace
period later; `max_duration` is a SIGALRM timer. Either one, arriving while an
`interrupting` block is open, stops the code that is running:

- plain code (the task's, or an async task's between two awaits) gets the exception
  (`TaskTerminatedError`, `MaxDurationExceededError`) raised where it is, from the
  signal handler, as Ctrl-C raises KeyboardInterrupt;
- async code waiting on the event loop is cancelled, so it sees `CancelledError` at its
  `await`; `explain` turns that back into the interruption for the report.

Outside such a block SIGTERM is only remembered (`terminated`): the hooks that run after
the outcome is decided, and the report to the API, are not cut short by it. Signals
reach only the main thread, so elsewhere nothing is interrupted.

While the task waits (`trigger_and_wait`, batches, `wait.for_`: the client says so, as a
`podtask._client.wait_observers.WaitObserver`), the max-duration clock stops: time spent
waiting is not the task's (`waited_seconds`), and the deadline moves by it.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from podtask.errors import TaskTerminatedError

if TYPE_CHECKING:
    import asyncio

TERMINATED_MESSAGE = (
    "the attempt was stopped by SIGTERM: the run was canceled, or its pod was evicted or deleted"
)


def _terminated() -> BaseException:
    return TaskTerminatedError(TERMINATED_MESSAGE)


@dataclass(frozen=True)
class Deadline:
    """A monotonic time, and the error that says it has passed."""

    at: float
    error: Callable[[], BaseException]


class Interruptions:
    """The runner's SIGTERM and SIGALRM handlers and what they interrupt."""

    def __init__(self) -> None:
        self.terminated = False
        self._termination_interrupts = False
        self._deadline: Deadline | None = None
        self._pending: Callable[[], BaseException] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._handlers_installed = False
        self.waited_seconds = 0.0
        self._waiting_since: float | None = None

    @contextmanager
    def installed(self) -> Iterator[Interruptions]:
        """Own SIGTERM and SIGALRM for the block (main thread only), then restore them."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {
            signal.SIGTERM: signal.signal(signal.SIGTERM, self._on_sigterm),
            signal.SIGALRM: signal.signal(signal.SIGALRM, self._on_sigalrm),
        }
        self._handlers_installed = True
        try:
            yield self
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._handlers_installed = False
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @contextmanager
    def interrupting(
        self, *, termination: bool = True, deadline: Deadline | None = None
    ) -> Iterator[None]:
        """Let SIGTERM (when `termination`) and `deadline` interrupt the code in the block.

        A SIGTERM that came before the block counts as soon as `check()` is called in it.
        """
        self._pending = _terminated if termination and self.terminated else None
        self._deadline = deadline if self._handlers_installed else None
        self._termination_interrupts = termination
        if self._deadline is not None:
            signal.setitimer(signal.ITIMER_REAL, max(self._deadline.at - time.monotonic(), 1e-3))
        try:
            yield
        finally:
            self._termination_interrupts = False
            if self._deadline is not None:
                signal.setitimer(signal.ITIMER_REAL, 0)
                self._deadline = None

    # --- waits: the max-duration clock stops while the task waits ---------------------------

    @property
    def stopping(self) -> bool:
        return self.terminated

    def wait_started(self) -> None:
        if self._waiting_since is not None:
            return
        self._waiting_since = time.monotonic()
        if self._deadline is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def wait_ended(self) -> None:
        if self._waiting_since is None:
            return
        waited = time.monotonic() - self._waiting_since
        self._waiting_since = None
        self.waited_seconds += waited
        if self._deadline is not None:
            self._deadline = Deadline(self._deadline.at + waited, self._deadline.error)
            signal.setitimer(signal.ITIMER_REAL, max(self._deadline.at - time.monotonic(), 1e-3))

    def check(self) -> None:
        """Raise the interruption that came in this block, even if the code swallowed it."""
        if self._pending is not None:
            raise self._pending()

    def explain(self, exc: BaseException) -> BaseException:
        """The error an attempt that ended with `exc` failed with: the interruption, if one
        came, with the traceback of where it stopped the code (a cancellation included)."""
        if self._pending is None:
            return exc
        error = self._pending()
        if isinstance(exc, type(error)):
            return exc
        return error.with_traceback(exc.__traceback__)

    def attach(self, task: asyncio.Task[Any] | None) -> None:
        """The asyncio task to cancel when an interruption finds the event loop waiting."""
        self._task = task

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.terminated = True
        if self._termination_interrupts:
            self._interrupt(_terminated)

    def _on_sigalrm(self, signum: int, frame: FrameType | None) -> None:
        if self._deadline is not None:
            self._interrupt(self._deadline.error)

    def _interrupt(self, error: Callable[[], BaseException]) -> None:
        if self._pending is None:
            self._pending = error
        # No loop can run where asyncio was never imported (a plain task's pod imports none).
        asyncio = sys.modules.get("asyncio")
        loop = None
        if asyncio is not None:
            with suppress(RuntimeError):
                loop = asyncio.get_running_loop()
        # With a loop running but no task stepping, the loop is waiting (in select): an
        # exception raised here would tear through the loop's own code, so cancel instead.
        if asyncio is not None and loop is not None and asyncio.current_task(loop) is None:
            task = self._task
            if task is not None and not task.done():
                task.cancel()
                loop.call_soon_threadsafe(lambda: None)  # wake the loop from select
            return
        raise self._pending()
