"""Who hears of this process's waits: the runner, whose attempt's maxDuration clock stops while
its task waits (`podtask_runner.interruptions`). The waits themselves are `attempt_waits`'.

Apart from them, and on the standard library alone: the runner installs its observer before
every attempt, so this is imported before the task runs, and the API client need not be.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class WaitObserver(Protocol):
    """What the runner learns of its attempt's waits."""

    def wait_started(self) -> None: ...

    def wait_ended(self) -> None: ...

    @property
    def stopping(self) -> bool:
        """Whether the attempt is being stopped (a wait then goes on at once)."""
        ...


_observer: WaitObserver | None = None
# Waits open in this process, whatever their client: the observer hears of the first to
# start and of the last to end.
_open_waits = 0
_open_waits_lock = threading.Lock()


@contextmanager
def observed_by(observer: WaitObserver) -> Iterator[None]:
    """Tell `observer` of every wait that starts and ends within the block."""
    global _observer
    previous, _observer = _observer, observer
    try:
        yield
    finally:
        _observer = previous


def stopping() -> bool:
    """Whether the observer says the attempt is being stopped."""
    return _observer is not None and _observer.stopping


def observed_start() -> None:
    global _open_waits
    with _open_waits_lock:
        _open_waits += 1
        first = _open_waits == 1
    if first and _observer is not None:
        _observer.wait_started()


def observed_end() -> None:
    global _open_waits
    with _open_waits_lock:
        _open_waits -= 1
        last = _open_waits == 0
    if last and _observer is not None:
        _observer.wait_ended()
