"""`HttpServer`: an ASGI app served by uvicorn on a socket its owner bound, the way the dev
cluster serves its API and the node agent its logs: warnings only, no access log, no lifespan
events, and `start()` returning once it accepts connections."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn

STARTED_POLL_SECONDS = 0.01


class HttpServer:
    """`name` says which server failed when it exits during start-up; `options` are the
    rest of its `uvicorn.Config` (TLS, timeouts)."""

    def __init__(self, name: str, app: Any, sock: socket.socket, **options: Any) -> None:
        self.name = name
        self._sock = sock
        self._server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", **options)
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve; return once it listens, or raise what ended it first."""
        task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[self._sock]))
        self._task = task
        while not self._server.started:
            if task.done():
                task.result()
                raise RuntimeError(f"the {self.name} exited during start-up")
            await asyncio.sleep(STARTED_POLL_SECONDS)

    async def stop(self) -> None:
        """Let it finish its open requests (up to its graceful-shutdown timeout) and end; raise
        what it ended with."""
        self._server.should_exit = True
        if self._task is not None:
            await self._task
