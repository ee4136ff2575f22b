"""The state directory's lock: one cluster at a time uses a state directory's database.

Two clusters on one database would each hold their own view of the objects and overwrite what
the other wrote; it happens when `podtask dev` is started again at once after the one before
it was killed, whose cluster is still stopping its pods. The lock is an `flock` on
`cluster.lock`, held for as long as the cluster runs: the kernel drops it when the process
ends, however it ends, so a killed cluster leaves no stale lock. The file names the pid that
holds it, for the message of a cluster that waits for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

LOCK_NAME = "cluster.lock"
# Longer than a cluster takes to stop (its server's graceful shutdown, then its pods').
DEFAULT_WAIT_SECONDS = 30.0
POLL_SECONDS = 0.05

log = logging.getLogger(__name__)


class StateDirInUse(RuntimeError):
    def __init__(self, state_dir: Path, holder: str) -> None:
        super().__init__(
            f"the state dir {state_dir} is in use by another podtask dev cluster ({holder}); "
            "stop it, or use another state dir"
        )


class StateLock:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, timeout: float = DEFAULT_WAIT_SECONDS) -> None:
        """Take the lock, waiting up to `timeout` seconds for a cluster that is stopping."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        deadline = time.monotonic() + timeout
        said = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(fd)
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StateDirInUse(self.state_dir, holder) from None
                if not said:
                    log.warning(
                        "waiting for the cluster still using %s (%s) to stop",
                        self.state_dir,
                        holder,
                    )
                    said = True
                time.sleep(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            # Closing drops the flock; the file stays (removing it would race a waiter).
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "pid unknown"
