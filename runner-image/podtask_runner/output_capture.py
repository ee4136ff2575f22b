"""`OutputTee`: what this process writes to its stdout and stderr, copied on its way out.

The runner's fds 1 and 2 become pipes; one thread passes each read on to where the fd
pointed before (the container's log, unchanged for `kubectl logs`) and hands a copy to
`sink`. The copy is taken at the fd, not at `sys.stdout`: a `print`, a C extension's
write, a child process' output and a traceback all reach it alike.

Each write reaches the container's log as soon as the thread reads it (it waits for no
line and no buffer). One thread for both pipes, so that stdout and stderr keep their order
as far as it can tell: when it finds both waiting, the one whose last line is unfinished
goes first (an unbuffered `print` writes the text, then the newline: the line is not split
by the other stream's), else stdout. A SIGKILL may lose what was written in the last
instant and not yet read, which a direct write would have kept.
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
        os.dup2(write_end, fd)
        os.close(write_end)

    def restore(self) -> None:
        """Point the fd back where it pointed: later writes go there alone."""
        os.dup2(self._original, self.fd)

    def close(self) -> None:
        for fd in (self.read_end, self._original):
            with contextlib.suppress(OSError):
                os.close(fd)

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
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        _flush_std_streams()
        try:
            for fd in (1, 2):
                self._pipes.append(_Pipe(fd))
        except OSError:
            self.stop()  # put back the one already redirected
            raise
        self._thread = threading.Thread(target=self._pump, name="output-tee", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Restore the fds, then wait (briefly) for what was written before to be copied."""
        _flush_std_streams()
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

    def _pump(self) -> None:
        by_end = {pipe.read_end: pipe for pipe in self._pipes}
        drained_by = None
        while by_end:
            if self._stopping.is_set() and drained_by is None:
                drained_by = time.monotonic() + _DRAIN_SECONDS
            timeout = _IDLE_SECONDS if drained_by is None else _POLL_SECONDS
            try:
                ready, _, _ = select.select(list(by_end), [], [], timeout)
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return
            if not ready and drained_by is not None:
                return  # stopping, and the pipes are empty
            for pipe in sorted((by_end[end] for end in ready), key=_first_to_read):
                try:
                    data = os.read(pipe.read_end, _READ_BYTES)
                except OSError:
                    data = b""
                if not data:
                    del by_end[pipe.read_end]  # every writer closed it
                    continue
                pipe.forward(data)
                # The copy must never stop the output.
                with contextlib.suppress(Exception):
                    self._sink(data)
            if drained_by is not None and time.monotonic() > drained_by:
                return


def _first_to_read(pipe: _Pipe) -> tuple[bool, int]:
    """The order to read the pipes found waiting: one in the middle of a line, then stdout."""
    return (pipe.at_line_start, pipe.fd)


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
