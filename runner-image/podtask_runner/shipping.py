"""What the runner's shippers share: a thread that sends what the attempt produces to the API
while it runs (its log: `log_shipping`; its run's metadata: `metadata_shipping`), and the
last of it when the runner stops.

Shipping never holds up the attempt: a send tries briefly (the next one tries again; the
last one a little longer, or two quick tries when the pod is being stopped), the first
failure of a series is said in one runner line, and an ended attempt (`AttemptEnded`: its run
was canceled, timed out, moved on) stops the sending quietly, for good.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from podtask_runner.api_transport import Timeout
from podtask_runner.callbacks import (
    HURRIED_RETRY,
    HURRIED_TIMEOUT,
    ApiCallError,
    AttemptEnded,
    CallRetry,
)

# A send while the attempt runs tries once: the next one tries again. The last one tries a
# little longer.
FLUSH_RETRY = CallRetry(attempts=1)
FINAL_RETRY = CallRetry(attempts=3, first_delay=0.2)
SHIPPING_TIMEOUT = Timeout(read=5.0, connect=2.0)

Send = Callable[[CallRetry, Timeout], None]
"""One call to the API, with the patience it is given."""


def patience(*, final: bool, hurried: bool) -> tuple[CallRetry, Timeout]:
    """How long a send tries: `final`, the last one; `hurried`, the pod is being stopped
    (its grace period is short)."""
    retry = FLUSH_RETRY if not final else HURRIED_RETRY if hurried else FINAL_RETRY
    return retry, HURRIED_TIMEOUT if hurried else SHIPPING_TIMEOUT


class Shipper:
    """A thread (`run_shipping`, a subclass's loop) that sends `what` until `close`, which
    stops it and sends the last of it (`send_last`). `say` prints a runner line."""

    def __init__(self, what: str, say: Callable[[str], None]) -> None:
        self._what = what
        self._say = say
        self._stop = threading.Event()
        self._ended = False
        self._failing = False
        self._thread = threading.Thread(
            target=self.run_shipping, name=f"{what}-shipper", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def ended(self) -> bool:
        """Whether the API said the attempt has ended: nothing more is sent."""
        return self._ended

    def run_shipping(self) -> None:
        raise NotImplementedError

    def send_last(self, *, hurried: bool) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        """Called once the thread is told to stop: a loop that waits on more than the stop
        event wakes here."""

    def send(self, call: Send, *, final: bool, hurried: bool = False) -> bool:
        """Make one call; whether it reached the API. Nothing is sent once the attempt has
        ended."""
        if self._ended:
            return False
        retry, timeout = patience(final=final, hurried=hurried)
        try:
            call(retry, timeout)
        except AttemptEnded:
            self._ended = True  # the attempt is over: it takes nothing more
            return False
        except ApiCallError as exc:
            if not self._failing:
                self._failing = True
                self._say(f"could not send the {self._what} to the API ({exc}); trying again")
            return False
        self._failing = False
        return True

    def close(self, *, hurried: bool = False) -> None:
        """Stop the thread, then send the last of it."""
        self._stop.set()
        self.wake()
        if self._thread.is_alive():
            self._thread.join()
        self.send_last(hurried=hurried)
