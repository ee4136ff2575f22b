"""The container shim: one small process per container, between the kubelet and the
container's own processes, so that nothing a container starts outlives it.

`python -I -S podshim.py KUBELET_PID STATUS_FD COMMAND...` (stdlib only, no site: it starts
fast and imports nothing of the dev environment). On Linux it makes itself the child subreaper
of everything below it, so a process that double-forks into a session of its own (`setsid`)
is still its descendant, and it asks to get SIGHUP when the kubelet dies. It starts COMMAND in
a session of its own, then writes to STATUS_FD the reason the command could not start (nothing
when it started) and closes it.

Signals from the kubelet: SIGTERM (and SIGINT) are passed on to the container's process group,
for a graceful stop; SIGHUP kills every process of the container at once. When the command
ends, however it ends, every process still left is killed and reaped, and the shim exits with
the command's own status (dying by the same signal when the command was killed by one), so the
kubelet sees the container exactly as if it had run the command itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from types import FrameType

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
START_ERROR_EXIT_CODE = 128


def _prctl(option: int, value: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(option, value, 0, 0, 0)


def _die_with_the_shim() -> None:
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def descendants(root: int) -> list[int]:
    """Every process below `root`, from the parent links in /proc (empty where there is none)."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    # The command name may hold spaces and parentheses: fields follow the last ')'.
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


class Shim:
    def __init__(self) -> None:
        self.main: subprocess.Popen[bytes] | None = None
        self.killing = False

    def forward(self, signum: int, _frame: FrameType | None) -> None:
        if self.main is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.main.pid, signum)

    def kill(self, _signum: int = signal.SIGHUP, _frame: FrameType | None = None) -> None:
        self.killing = True
        if self.main is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.main.pid, signal.SIGKILL)
        self.kill_descendants()

    @staticmethod
    def kill_descendants() -> None:
        for pid in descendants(os.getpid()):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def run(self, kubelet_pid: int, status_fd: int, argv: list[str]) -> int:
        _prctl(PR_SET_PDEATHSIG, signal.SIGHUP)
        signal.signal(signal.SIGHUP, self.kill)
        signal.signal(signal.SIGTERM, self.forward)
        signal.signal(signal.SIGINT, self.forward)
        if os.getppid() != kubelet_pid:
            # The kubelet died before the death signal was armed.
            return START_ERROR_EXIT_CODE
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        try:
            self.main = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                # Should the shim itself be killed, its command dies with it (a process that
                # escaped into a session of its own then needs a cgroup to be found).
                preexec_fn=_die_with_the_shim,  # safe: the shim has one thread
            )
        except (OSError, ValueError) as error:
            with os.fdopen(status_fd, "w") as report:
                report.write(str(error))
            return START_ERROR_EXIT_CODE
        os.close(status_fd)
        if self.killing:
            self.kill()
        status = self.wait_main()
        self.reap_the_rest()
        return status

    def wait_main(self) -> int:
        assert self.main is not None
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return 0
            if pid == self.main.pid:
                # Popen must not wait for it again: the status is ours now.
                self.main.returncode = os.waitstatus_to_exitcode(status)
                return self.main.returncode

    def reap_the_rest(self) -> None:
        while True:
            self.kill_descendants()
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return


def main(argv: list[str]) -> int:
    kubelet_pid, status_fd, *command = argv
    code = Shim().run(int(kubelet_pid), int(status_fd), command)
    if code < 0:
        # Die by the command's signal, so the kubelet reads the same wait status.
        with contextlib.suppress(OSError, ValueError):
            signal.signal(-code, signal.SIG_DFL)
            sys.stdout.flush()
            os.kill(os.getpid(), -code)
        return 128 - code
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
