"""The node agent's HTTPS endpoint, as a kubelet serves it to the apiserver:
`/containerLogs/{namespace}/{pod}/{container}` with follow, tailLines, limitBytes, timestamps,
sinceSeconds/sinceTime and previous, so that `kubectl logs` works through the apiserver.

TLS with the node's serving certificate; a client must present a certificate signed by the
cluster CA (the apiserver's kubelet client certificate), so only the control plane reads logs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from podtask_devcluster.crilog import LogOptions, follow_log, parse_timestamp, read_log
from podtask_devcluster.http_server import HttpServer
from podtask_devcluster.store import JsonObject

UNSEEN_POD_WAIT_SECONDS = 3.0
UNSEEN_POD_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class ContainerLog:
    """What the agent knows of one container's log."""

    path: Path
    still_writing: Callable[[], bool]
    # The log of the container's run before this one, once it was started again.
    previous: Path | None = None


# (namespace, pod, container) -> the pod and the log, or None when the pod is not here.
LogLookup = Callable[[str, str, str], tuple[JsonObject, ContainerLog | None] | None]


class BadRequest(Exception):
    pass


def log_options(query: dict[str, str]) -> LogOptions:
    def number(name: str) -> int | None:
        text = query.get(name)
        if text in (None, ""):
            return None
        try:
            return int(str(text))
        except ValueError as error:
            raise BadRequest(f"invalid {name} {text!r}") from error

    since: dt.datetime | None = None
    if (seconds := number("sinceSeconds")) is not None:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
    elif query.get("sinceTime"):
        try:
            since = parse_timestamp(query["sinceTime"])
        except ValueError as error:
            raise BadRequest(f"invalid sinceTime {query['sinceTime']!r}") from error
    return LogOptions(
        tail_lines=number("tailLines"),
        since=since,
        timestamps=query.get("timestamps") in ("true", "1"),
        limit_bytes=number("limitBytes"),
    )


class LogServer:
    def __init__(
        self, lookup: LogLookup, cert_file: Path, key_file: Path, client_ca_file: Path
    ) -> None:
        self._lookup = lookup
        self._stopping = asyncio.Event()
        self._cert_file = cert_file
        self._key_file = key_file
        self._client_ca_file = client_ca_file
        self._http: HttpServer | None = None
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/containerLogs/{namespace}/{pod}/{container}", self._logs),
                Route("/healthz", lambda _: PlainTextResponse("ok")),
            ]
        )

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self.port = int(sock.getsockname()[1])
        self._http = HttpServer(
            "log server",
            self.app,
            sock,
            timeout_graceful_shutdown=2,
            ssl_certfile=str(self._cert_file),
            ssl_keyfile=str(self._key_file),
            ssl_ca_certs=str(self._client_ca_file),
            ssl_cert_reqs=ssl.CERT_REQUIRED,
        )
        await self._http.start()
        return self.port

    async def stop(self) -> None:
        self._stopping.set()
        if self._http is not None:
            await self._http.stop()

    async def _logs(self, request: Request) -> Response:
        namespace = request.path_params["namespace"]
        name = request.path_params["pod"]
        container = request.path_params["container"]
        query = dict(request.query_params)
        try:
            options = log_options(query)
        except BadRequest as error:
            return PlainTextResponse(str(error), status_code=400)
        found = self._lookup(namespace, name, container)
        deadline = asyncio.get_running_loop().time() + UNSEEN_POD_WAIT_SECONDS
        while found is None and asyncio.get_running_loop().time() < deadline:
            # Bound a moment ago, the pod may not have reached this node's watch yet.
            await asyncio.sleep(UNSEEN_POD_POLL_SECONDS)
            found = self._lookup(namespace, name, container)
        if found is None:
            return PlainTextResponse(f'pod "{name}" not found', status_code=404)
        pod, log = found
        names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        if container not in names:
            return PlainTextResponse(
                f'container "{container}" in pod "{name}" is not available', status_code=400
            )
        if query.get("previous") in ("true", "1"):
            if log is None or log.previous is None or not log.previous.exists():
                return PlainTextResponse(
                    f'previous terminated container "{container}" in pod "{name}" not found',
                    status_code=400,
                )
            return Response(read_log(log.previous, options), media_type="text/plain")
        if log is None or not log.path.exists():
            return PlainTextResponse(
                f'container "{container}" in pod "{name}" is waiting to start: '
                f"{_waiting_reason(pod, container)}",
                status_code=400,
            )
        if query.get("follow") in ("true", "1"):
            return StreamingResponse(
                follow_log(log.path, options, log.still_writing, self._stopping),
                media_type="text/plain",
            )
        return Response(read_log(log.path, options), media_type="text/plain")


def _waiting_reason(pod: JsonObject, container: str) -> str:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if status.get("name") == container and waiting.get("reason"):
            return str(waiting["reason"])
    return "ContainerCreating"
