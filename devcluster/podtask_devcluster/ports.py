"""Free loopback ports for servers that a test or `podtask dev` starts and then names.

A port that the kernel hands out for `bind(0)` comes from the ephemeral range, which is also
where every outgoing connection takes its local port: between choosing such a port and the
server binding it, a client's connection (kube-apiserver to etcd makes many) may take it.
So the ports are chosen below the ephemeral range, where only servers bind.

Processes that start servers side by side (a test session's workers) would still draw the
same port now and then, and a port drawn but not yet bound (a rendered chart's, long before
its process starts) is free to the others: each such process is given its own slice of the
range in `PODTASK_FREE_PORT_RANGE` ("low-high"), and a process never hands out a port twice.
What a process starts inherits its slice (a worker's `podtask dev`), so a drawn port is also
reserved, machine-wide, for as long as the process that drew it lives: by a lock it holds on
a file named for the port, which the kernel releases when the process exits, however it ends.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
from collections import OrderedDict
from pathlib import Path

# Not the global `random`: a test framework may seed it (hypothesis does), and every server
# of the run would then be handed the same "random" ports.
_CHOICE = random.SystemRandom()
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10000
TRIES = 200
RANGE_VARIABLE = "PODTASK_FREE_PORT_RANGE"
# A server binds its port within moments to minutes of the draw; then the kernel guards it and
# the reservation is moot. The oldest are let go so that a long test session keeps few files open.
RESERVATIONS_HELD = 256
_handed_out: set[int] = set()
# port -> the descriptor whose lock reserves it, oldest first.
_reservations: OrderedDict[int, int] = OrderedDict()


def _reservation_dir() -> Path:
    path = Path(tempfile.gettempdir()) / f"podtask-ports-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _reserve(port: int) -> bool:
    """Whether `port` is now this process's until it exits (False: another live process's).

    The descriptor is not inherited (Python's default), so what this process starts cannot
    keep the lock past the reason for it."""
    if port in _reservations:
        _reservations.move_to_end(port)
        return True
    try:
        fd = os.open(_reservation_dir() / str(port), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        # No writable temporary directory: the slices alone keep processes apart.
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _reservations[port] = fd
    while len(_reservations) > RESERVATIONS_HELD:
        os.close(_reservations.popitem(last=False)[1])
    return True


def _release(port: int) -> None:
    fd = _reservations.pop(port, None)
    if fd is not None:
        os.close(fd)


def _ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def port_range() -> tuple[int, int]:
    """The lowest and the highest port to hand out: this process's slice, if it was given one."""
    given = os.environ.get(RANGE_VARIABLE, "")
    if given:
        low, _, high = given.partition("-")
        return int(low), int(high)
    return LOWEST, _ephemeral_start() - 1


def slice_of_range(index: int, count: int) -> str:
    """The `index`th of `count` equal slices of the range, as `RANGE_VARIABLE` takes it."""
    lowest, highest = port_range()
    size = (highest - lowest + 1) // count
    low = lowest + index * size
    return f"{low}-{low + size - 1}"


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on every IPv4 address now, in this process's range, none
    handed out before by this process (unless the range has no other left) nor drawn by
    another process that still lives."""
    lowest, highest = port_range()
    if len(_handed_out) > (highest - lowest) // 2:
        _handed_out.clear()
    chosen: list[int] = []
    held: list[socket.socket] = []
    try:
        for _ in range(TRIES * count):
            if len(chosen) == count:
                break
            port = _CHOICE.randint(lowest, highest)
            if port in _handed_out or port in chosen or not _reserve(port):
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                # The wildcard: free on every address, for servers that bind 0.0.0.0 too.
                sock.bind(("0.0.0.0", port))
            except OSError:
                sock.close()
                _release(port)
                continue
            held.append(sock)
            chosen.append(port)
    finally:
        for sock in held:
            sock.close()
    if len(chosen) < count:
        raise OSError(f"no {count} free loopback ports between {lowest} and {highest}")
    _handed_out.update(chosen)
    return chosen


def free_port() -> int:
    return free_ports(1)[0]
