"""`OutputTee`: what this process writes to its stdout and stderr, copied on its way out.

The runner's fds 1 and 2 become pipes; one thread passes each read on to where the fd
pointed before (the container's log, unchanged for `kubectl logs`) and hands a copy to
`sink`. The copy is taken at the fd, not at `sys.stdout`: a `print`, a C extension's
write, a child process' output and a traceback all reach it alike.

Each write reaches the container's log as soon as the thread reads it (it waits for no
line and no buffer). One thread for both pipes, so that stdout and stderr keep their order
as far as it can tell: when it finds both waiting, the one whose last line is unfinished
goes first (an unbuffered `print` writes the text, then the newline: the line is not split
by the other stream's), else stdout. Two pipes cannot tell which was written first, so the
runner's own lines do not go through them: `write_in_order` passes on what waits in the
pipes first, then the line, so it stands after everything the process wrote before it (a
runner's start line before the task's first output, however fast that comes). A SIGKILL
may lose what was written in the last instant and not yet read, which a direct write would
have kept.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
import time
from collections.abc import Callable

_READ_BYTES = 64 * 1024
# While stopping: how often the thread looks whether the pipes are empty, and how long in
# all `stop` waits for them to drain (a child process that keeps writing would hold it).
_POLL_SECONDS = 0.05
_DRAIN_SECONDS = 2.0
# Otherwise: how often the thread waiting for output looks whether it is to stop.
_IDLE_SECONDS = 0.25
# The most `write_in_order` passes on from the pipes before its line (a child process that
# never stops writing would hold it otherwise).
_CATCH_UP_BYTES = 4 * 1024 * 1024

# The process has one fd 1 and one fd 2, so one tee at most copies them.
_active: OutputTee | None = None


def write_in_order(text: str) -> None:
    """Write `text` to stderr after everything this process wrote to its stdout and stderr
    before it, in the copy too while a tee copies them (else straight to `sys.stderr`)."""
    tee = _active
    if tee is None or not tee.write_in_order(text.encode(errors="replace")):
        sys.stderr.write(text)


class _Pipe:
    """One fd (1 or 2) redirected into a pipe; where it pointed before is kept."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._original = os.dup(fd)
        self._forwarding = True
        # Whether the last bytes passed on ended a line.
        self.at_line_start = True
        try:
            read_end, write_end = os.pipe()
        except OSError:
            os.close(self._original)
            raise
        self.read_end = read_end
        # Read by the tee's thread and by `write_in_order`: whoever finds it empty goes on.
        os.set_blocking(read_end, False)
        os.dup2(write_end, fd)
        os.close(write_end)

    def restore(self) -> None:
        """Point the fd back where it pointed: later writes go there alone."""
        os.dup2(self._original, self.fd)

    def close(self) -> None:
        for fd in (self.read_end, self._original):
            with contextlib.suppress(OSError):
                os.close(fd)

    def read(self) -> bytes | None:
        """What waits in the pipe; None when nothing does, b"" once every writer closed it."""
        try:
            return os.read(self.read_end, _READ_BYTES)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def forward(self, data: bytes) -> None:
        self.at_line_start = data.endswith(b"\n")
        view = memoryview(data)
        while self._forwarding and view:
            try:
                written = os.write(self._original, view)
            except InterruptedError:
                continue
            except OSError:
                self._forwarding = False  # the log's reader is gone: keep only the copy
                return
            view = view[written:]


class OutputTee:
    """Copy everything written to fds 1 and 2 to `sink`, from `start` until `stop`."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink
        self._stopping = threading.Event()
        self._pipes: list[_Pipe] = []
        self._open: dict[int, _Pipe] = {}
        self._thread: threading.Thread | None = None
        # Held while a read is passed on, so that what is read first is passed on first.
        self._lock = threading.Lock()
        self._capturing = False

    def start(self) -> None:
        global _active
        _flush_std_streams()
        try:
            for fd in (1, 2):
                self._pipes.append(_Pipe(fd))
        except OSError:
            self.stop()  # put back the one already redirected
            raise
        self._open = {pipe.read_end: pipe for pipe in self._pipes}
        self._capturing = True
        _active = self
        self._thread = threading.Thread(target=self._pump, name="output-tee", daemon=True)
        self._thread.start()

    def write_in_order(self, data: bytes) -> bool:
        """Pass on what waits in the pipes, then `data` as written to stderr; False when
        this tee no longer copies the fds."""
        _flush_std_streams()
        with self._lock:
            if not self._capturing:
                return False
            self._catch_up()
            stderr = next(pipe for pipe in self._pipes if pipe.fd == 2)
            stderr.forward(data)
            self._copy(data)
        return True

    def stop(self) -> None:
        """Restore the fds, then wait (briefly) for what was written before to be copied."""
        global _active
        _flush_std_streams()
        with self._lock:
            self._capturing = False
            if _active is self:
                _active = None
        for pipe in self._pipes:
            pipe.restore()
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(_DRAIN_SECONDS + 1)
            if self._thread.is_alive():
                return  # still reading: its pipes stay open for it
        for pipe in self._pipes:
            pipe.close()
        self._pipes = []

    def _copy(self, data: bytes) -> None:
        # The copy must never stop the output.
        with contextlib.suppress(Exception):
            self._sink(data)

    def _pass_on(self, pipes: list[_Pipe]) -> int:
        """Read each of `pipes` once, in order, passing on what it held; the bytes read.
        Called with the lock held."""
        passed = 0
        for pipe in sorted(pipes, key=_first_to_read):
            if pipe.read_end not in self._open:
                continue
            data = pipe.read()
            if data is None:
                continue  # read already by the other reader
            if not data:
                del self._open[pipe.read_end]  # every writer closed it
                continue
            pipe.forward(data)
            self._copy(data)
            passed += len(data)
        return passed

    def _catch_up(self) -> None:
        """Pass on everything that waits in the pipes now (up to `_CATCH_UP_BYTES`)."""
        passed = 0
        while self._open and passed < _CATCH_UP_BYTES:
            try:
                ready, _, _ = select.select(list(self._open), [], [], 0)
            except (OSError, ValueError):
                return
            if not ready:
                return
            passed += self._pass_on([self._open[end] for end in ready])

    def _pump(self) -> None:
        drained_by = None
        while self._open:
            if self._stopping.is_set() and drained_by is None:
                drained_by = time.monotonic() + _DRAIN_SECONDS
            timeout = _IDLE_SECONDS if drained_by is None else _POLL_SECONDS
            try:
                ready, _, _ = select.select(list(self._open), [], [], timeout)
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return
            if not ready and drained_by is not None:
                return  # stopping, and the pipes are empty
            with self._lock:
                self._pass_on([self._open[end] for end in ready if end in self._open])
            if drained_by is not None and time.monotonic() > drained_by:
                return


def _first_to_read(pipe: _Pipe) -> tuple[bool, int]:
    """The order to read the pipes found waiting: one in the middle of a line, then stdout."""
    return (pipe.at_line_start, pipe.fd)


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
