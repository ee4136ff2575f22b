"""Sending the run's metadata to the API while the task changes it (`podtask.metadata`).

The task changes `ctx.metadata` (a `RunMetadata`) as often as it likes; a `MetadataShipper`
thread sends the whole document (`PUT …/metadata`) at most once every
`SEND_INTERVAL_SECONDS` while it changes: at once after a quiet spell, else when the
interval since the last send is over (`wait_before_sending`, the decision). `flush` (the
task's `metadata.flush()`) sends at once; `close` sends what changed since the last send,
before the attempt reports. One send at a time, each with the latest document, so the API
never goes back to an older one. The thread starts at the first change: most tasks never
write their metadata. The thread, the failures and an ended attempt are
handled as the log's are (`shipping.Shipper`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from podtask._authoring.run_metadata import RunMetadata
from podtask._contract.run_metadata import SEND_INTERVAL_SECONDS
from podtask_runner.api_transport import Timeout
from podtask_runner.callbacks import CallRetry
from podtask_runner.shipping import Shipper


def wait_before_sending(
    *, changed: bool, last_sent_at: float | None, now: float, interval: float
) -> float | None:
    """Seconds to wait before the document is sent: None when it has not changed since
    the last send (nothing to send), 0 to send it now. `last_sent_at` is when the last send
    was tried (None: never), on the clock of `now`."""
    if not changed:
        return None
    if last_sent_at is None:
        return 0.0
    return max(0.0, last_sent_at + interval - now)


class MetadataSender(Protocol):
    def put_metadata(self, text: str, *, retry: CallRetry, timeout: Timeout) -> None:
        pass


class MetadataShipper(Shipper):
    """Sends `metadata` through `sender` while it changes, at most once every `interval`."""

    def __init__(
        self,
        metadata: RunMetadata,
        sender: MetadataSender,
        say: Callable[[str], None],
        *,
        interval: float = SEND_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__("metadata", say)
        self._metadata = metadata
        self._sender = sender
        self._interval = interval
        self._clock = clock
        self._changed = threading.Event()
        self._sending = threading.Lock()
        self._starting = threading.Lock()
        self._armed = False
        self._running = False
        # The document the API holds already: the one the attempt was given.
        self._sent_version, _ = metadata.snapshot()
        self._last_sent_at: float | None = None
        metadata.watch(self._on_change, self.flush)

    def start(self) -> None:
        """Ship from the first change on: the thread starts then, so that a task that never
        writes its metadata runs with no thread of it (nor the switches one costs)."""
        with self._starting:
            self._armed = True
        if self._metadata.snapshot()[0] != self._sent_version:
            self._on_change()

    def _on_change(self) -> None:
        self._changed.set()
        with self._starting:
            if not self._armed or self._running or self.stopping:
                return
            self._running = True
        super().start()

    def run_shipping(self) -> None:
        while not self.stopping and not self.ended:
            version, _ = self._metadata.snapshot()
            wait = wait_before_sending(
                changed=version != self._sent_version,
                last_sent_at=self._last_sent_at,
                now=self._clock(),
                interval=self._interval,
            )
            if wait is None:
                self._changed.wait()
                self._changed.clear()
            elif wait > 0:
                self._stop.wait(wait)
            else:
                self._send_latest(final=False)

    def wake(self) -> None:
        self._changed.set()

    def flush(self) -> None:
        """Send the latest document now (the task's `metadata.flush()`), unless the attempt
        is being reported already."""
        if not self.stopping:
            self._send_latest(final=True)

    def send_last(self, *, hurried: bool) -> None:
        self._send_latest(final=True, hurried=hurried)

    def _send_latest(self, *, final: bool, hurried: bool = False) -> None:
        with self._sending:
            version, text = self._metadata.snapshot()
            if version == self._sent_version:
                return
            self._last_sent_at = self._clock()

            def put(retry: CallRetry, timeout: Timeout) -> None:
                self._sender.put_metadata(text, retry=retry, timeout=timeout)

            if self.send(put, final=final, hurried=hurried):
                self._sent_version = version
