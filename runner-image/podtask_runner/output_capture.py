"""`OutputTee`: what this process writes to its stdout and stderr, copied on its way out.

The runner's fds 1 and 2 become one pipe; a thread passes each read on to where fd 1 pointed
before (the container's log, for `kubectl logs`) and hands a copy to `sink`. One pipe, not
one per fd: two pipes read by two threads reorder what was written (a `print`'s newline, a
write of its own, came after the other stream's next line), and a log must keep the order
its lines were written in. The container's log then has both streams as its stdout.
The copy is taken at the fd, not at `sys.stdout`: a `print`, a C extension's write, a
child process' output and a traceback all reach it alike.

Each write reaches the container's log as soon as the thread reads it (it waits for no
line and no buffer). A SIGKILL may lose what was written in the last instant and not yet
read, which a direct write would have kept: that is a matter of microseconds.
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
# While stopping: how often a thread looks whether its pipe is empty, and how long in all
# `stop` waits for the pipes to drain (a child process that keeps writing would hold it).
_POLL_SECONDS = 0.05
_DRAIN_SECONDS = 2.0
# Otherwise: how often a thread waiting for output looks whether it is to stop.
_IDLE_SECONDS = 0.25
_FDS = (1, 2)


class _Pipe:
    """Fds 1 and 2 redirected into one pipe, and the thread that empties it."""

    def __init__(self, sink: Callable[[bytes], None], stopping: threading.Event) -> None:
        self._sink = sink
        self._stopping = stopping
        self._saved = {fd: os.dup(fd) for fd in _FDS}
        self._original = self._saved[1]
        self._forwarding = True
        try:
            read_end, write_end = os.pipe()
        except OSError:
            for fd in self._saved.values():
                os.close(fd)
            raise
        self._read_end = read_end
        for fd in _FDS:
            os.dup2(write_end, fd)
        os.close(write_end)
        self.thread = threading.Thread(target=self._pump, name="output-tee", daemon=True)
        self.thread.start()

    def restore(self) -> None:
        """Point the fds back where they pointed: later writes go there alone."""
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)

    def close(self) -> None:
        for fd in (self._read_end, *self._saved.values()):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _pump(self) -> None:
        drained_by = None
        while True:
            if self._stopping.is_set() and drained_by is None:
                drained_by = time.monotonic() + _DRAIN_SECONDS
            timeout = _IDLE_SECONDS if drained_by is None else _POLL_SECONDS
            try:
                ready, _, _ = select.select([self._read_end], [], [], timeout)
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return
            if not ready:
                if drained_by is not None:
                    return  # stopping, and the pipe is empty
                continue
            try:
                data = os.read(self._read_end, _READ_BYTES)
            except OSError:
                return
            if not data:
                return  # every writer closed it
            self._forward(data)
            # The copy must never stop the output.
            with contextlib.suppress(Exception):
                self._sink(data)
            if drained_by is not None and time.monotonic() > drained_by:
                return

    def _forward(self, data: bytes) -> None:
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

    def start(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        self._pipes.append(_Pipe(self._sink, self._stopping))

    def stop(self) -> None:
        """Restore the fds, then wait (briefly) for what was written before to be copied."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for pipe in self._pipes:
            pipe.restore()
        self._stopping.set()
        for pipe in self._pipes:
            pipe.thread.join(_DRAIN_SECONDS + 1)
            if not pipe.thread.is_alive():
                pipe.close()
        self._pipes = []
