"""What the builds of podtask's cached artefacts (the control plane's binaries, the images)
share: one build at a time across processes, and the end of a failed build's log."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

BUILD_LOG_LINES = 30


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold `lock_file` (made with its folder if need be) against every other process."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the kernel drops it if this process dies
        yield
    finally:
        os.close(fd)


def log_tail(path: Path, lines: int = BUILD_LOG_LINES) -> str:
    """The last `lines` lines of a build's log ("" when there is none)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
