"""The ports `podtask dev` listens on: whether one is taken before a part is started there, and
what to tell the developer when it is (by whom, and how to choose another).

The most common taker is a second `podtask dev` (`make dev` in another terminal): its API
answers `/healthz` with the `Podtask-Instance` header, so the message can name it.
"""

from __future__ import annotations

import contextlib
import errno
import socket

import httpx

from podtask._contract.wire import INSTANCE_HEADER

# The `make dev` variable that passes each `podtask dev` port option (the Makefile's `dev`).
MAKE_VARIABLES = {"--port": "PORT"}
_PROBE_SECONDS = 1.0


def port_taken_message(port: int, part: str, option: str, *, by_dev: bool) -> str:
    """What to tell the developer when `port` is taken: by whom, and how to choose another
    (`option` of `podtask dev`, and its variable of `make dev` when it has one)."""
    taker = "another `podtask dev` (its API answers there)" if by_dev else "another program"
    choose = f"`podtask dev {option} N`"
    if option in MAKE_VARIABLES:
        choose += f" (`make dev {MAKE_VARIABLES[option]}=N`)"
    return (
        f"podtask dev: port {port} is taken by {taker}, so the {part} cannot listen there; "
        f"stop it, or choose another port with {choose}, 0 for any free port"
    )


def answers_as_dev(port: int) -> bool:
    """Whether what listens on the loopback `port` is the API or the embedded cluster of a
    `podtask dev` (its health endpoints echo their instance id)."""
    for path in ("/healthz", "/readyz"):
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=_PROBE_SECONDS)
            if response.headers.get(INSTANCE_HEADER):
                return True
    return False


class PortTaken(SystemExit):
    def __init__(self, port: int, part: str, option: str) -> None:
        super().__init__(port_taken_message(port, part, option, by_dev=answers_as_dev(port)))


def ensure_port_free(port: int, part: str, option: str) -> None:
    """Fail with a clear message if something already listens on the loopback `port`."""
    with socket.socket() as sock:
        # As the servers bind: a connection of a previous run in TIME_WAIT does not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PortTaken(port, part, option) from None
            raise
