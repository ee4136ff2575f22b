"""Sending the attempt's output to the API, so that its log outlives its pod.

`AttemptLog` ties the parts together for one attempt: `OutputTee` copies what the container
writes into a `LogBuffer`, and a `LogShipper` thread sends what is new every
`FLUSH_SECONDS` (`podtask._contract.attempt_logs`), then everything left, marked final,
when the runner stops (the thread, the patience and the failures: `shipping.Shipper`). A
SIGKILL loses the last second at most.

The buffer keeps what the API would keep (the head of the log and its last `TAIL_BYTES`),
so an API out of reach for a while costs memory within that bound, and a gap in the stored
log where the middle was left out. The log never holds up the attempt: a failed send is
tried again at the next flush, an ended attempt stops the sending quietly.
"""

from __future__ import annotations

import codecs
import threading
from collections.abc import Callable
from typing import Protocol

from podtask._contract.attempt_logs import (
    FLUSH_SECONDS,
    HEAD_BYTES,
    MAX_CHUNK_BYTES,
    TAIL_BYTES,
    LogChunk,
)
from podtask_runner.api_transport import Timeout
from podtask_runner.callbacks import CallRetry
from podtask_runner.output_capture import OutputTee
from podtask_runner.shipping import Shipper


def _is_continuation(byte: int) -> bool:
    return byte & 0xC0 == 0x80


def _char_start(data: bytes | bytearray, index: int) -> int:
    """The first index at or after `index` where a UTF-8 character starts."""
    while index < len(data) and _is_continuation(data[index]):
        index += 1
    return index


class LogBuffer:
    """The output not yet sent: UTF-8 text (whatever was not UTF-8 replaced) by byte offset
    of the whole output, in runs that a trimmed middle separates. Thread-safe."""

    def __init__(self, *, head_bytes: int = HEAD_BYTES, tail_bytes: int = TAIL_BYTES) -> None:
        self._head = head_bytes
        self._tail = tail_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._runs: list[tuple[int, bytearray]] = []
        self._end = 0
        self._finished = False
        self._closed = False
        self._lock = threading.Lock()

    @property
    def end(self) -> int:
        """The offset just past everything written so far."""
        with self._lock:
            return self._end

    def write(self, data: bytes) -> None:
        with self._lock:
            self._append(self._decoder.decode(data).encode())

    def finish(self) -> None:
        """Nothing more comes: a character cut short at the end becomes U+FFFD."""
        with self._lock:
            self._append(self._decoder.decode(b"", final=True).encode())
            self._finished = True

    def _append(self, data: bytes) -> None:
        if not data:
            return
        if self._runs and self._runs[-1][0] + len(self._runs[-1][1]) == self._end:
            self._runs[-1][1].extend(data)
        else:
            self._runs.append((self._end, bytearray(data)))
        self._end += len(data)
        self._trim()

    def _trim(self) -> None:
        """Keep the head whole and the last `tail` bytes after it; drop the oldest of the rest."""
        past_head = sum(len(buf) - self._head_part(offset, buf) for offset, buf in self._runs)
        excess = past_head - self._tail
        if excess <= 0:
            return
        kept: list[tuple[int, bytearray]] = []
        for offset, buf in self._runs:
            if excess <= 0:
                kept.append((offset, buf))
                continue
            head_part = self._head_part(offset, buf)
            if head_part:
                kept.append((offset, buf[:head_part]))
            rest = buf[head_part:]
            if len(rest) <= excess:
                excess -= len(rest)
                continue
            cut = _char_start(rest, excess)
            excess = 0
            if cut < len(rest):
                kept.append((offset + head_part + cut, rest[cut:]))
        self._runs = kept

    def _head_part(self, offset: int, buf: bytearray) -> int:
        """How many of `buf`'s first bytes belong to the head (ending on a character)."""
        if offset >= self._head:
            return 0
        return _char_start(buf, min(len(buf), self._head - offset))

    def next_chunk(self, *, final: bool = False) -> LogChunk | None:
        """The first text not yet sent, at most `MAX_CHUNK_BYTES`; None when there is none.

        With `final` (after `finish`) the chunk that takes the last of it says so, and when
        nothing is left an empty final chunk marks where the log ends, once.
        """
        with self._lock:
            if self._closed:
                return None
            if not self._runs:
                return LogChunk(offset=self._end, final=True) if final else None
            offset, buf = self._runs[0]
            size = len(buf)
            if size > MAX_CHUNK_BYTES:
                size = MAX_CHUNK_BYTES
                while size > 0 and _is_continuation(buf[size]):
                    size -= 1
            last = final and len(self._runs) == 1 and size == len(buf)
            return LogChunk(offset=offset, text=bytes(buf[:size]).decode(), final=last)

    def sent(self, chunk: LogChunk) -> None:
        """`chunk` reached the API: forget what it held (some may have been trimmed since)."""
        end = chunk.end
        with self._lock:
            kept: list[tuple[int, bytearray]] = []
            for offset, buf in self._runs:
                if offset + len(buf) <= end:
                    continue
                kept.append((end, buf[end - offset :]) if offset < end else (offset, buf))
            self._runs = kept
            if chunk.final:
                self._closed = True


class LogSender(Protocol):
    def append_log(self, chunk: LogChunk, *, retry: CallRetry, timeout: Timeout) -> None:
        pass


class LogShipper(Shipper):
    """Sends the buffer's chunks every `interval` seconds from a thread, and the rest at
    `close`. `say` prints a runner line (the first failure of a series, not each one)."""

    def __init__(
        self,
        buffer: LogBuffer,
        sender: LogSender,
        say: Callable[[str], None],
        *,
        interval: float = FLUSH_SECONDS,
    ) -> None:
        super().__init__("log", say)
        self._buffer = buffer
        self._sender = sender
        self._interval = interval

    def run_shipping(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush(final=False)

    def flush(self, *, final: bool, hurried: bool = False) -> None:
        """Send what is pending; stop at the first failure (the next flush goes on).
        `hurried`: the pod is being stopped, and its grace period is short."""
        while True:
            chunk = self._buffer.next_chunk(final=final)
            if chunk is None:
                return

            def append(retry: CallRetry, timeout: Timeout, chunk: LogChunk = chunk) -> None:
                self._sender.append_log(chunk, retry=retry, timeout=timeout)

            if not self.send(append, final=final, hurried=hurried):
                return
            self._buffer.sent(chunk)

    def send_last(self, *, hurried: bool) -> None:
        """Everything left, the last chunk marked final."""
        self._buffer.finish()
        self.flush(final=True, hurried=hurried)


class AttemptLog:
    """The attempt's output copied to the API from `start` to `stop`."""

    def __init__(self, sender: LogSender, say: Callable[[str], None]) -> None:
        self._buffer = LogBuffer()
        self._tee = OutputTee(self._buffer.write)
        self._shipper = LogShipper(self._buffer, sender, say)
        self._say = say
        self._started = False

    def start(self) -> None:
        try:
            self._tee.start()
        except OSError as exc:
            # No stdout or stderr to copy (a closed fd): the attempt runs without the copy.
            self._say(f"the log cannot be sent to the API ({exc}); the pod's log is the only one")
            return
        self._shipper.start()
        self._started = True

    def stop(self, *, hurried: bool = False) -> None:
        if self._started:
            self._tee.stop()
            self._shipper.close(hurried=hurried)
