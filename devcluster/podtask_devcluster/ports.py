"""Free loopback ports for servers that a test or `podtask dev` starts and then names.

A port that the kernel hands out for `bind(0)` comes from the ephemeral range, which is also
where every outgoing connection takes its local port: between choosing such a port and the
server binding it, a client's connection (kube-apiserver to etcd makes many) may take it.
So the ports are chosen below the ephemeral range, where only servers bind.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Not the global `random`: a test framework may seed it (hypothesis does), and every server
# of the run would then be handed the same "random" ports.
_CHOICE = random.SystemRandom()
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10000
TRIES = 200


def _ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on every IPv4 address now, outside the ephemeral range."""
    highest = _ephemeral_start() - 1
    chosen: list[int] = []
    held: list[socket.socket] = []
    try:
        for _ in range(TRIES * count):
            if len(chosen) == count:
                break
            port = _CHOICE.randint(LOWEST, highest)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                # The wildcard: free on every address, for servers that bind 0.0.0.0 too.
                sock.bind(("0.0.0.0", port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
            chosen.append(port)
    finally:
        for sock in held:
            sock.close()
    if len(chosen) < count:
        raise OSError(f"no {count} free loopback ports between {LOWEST} and {highest}")
    return chosen


def free_port() -> int:
    return free_ports(1)[0]
