"""The runner's HTTP to the API: one request, one answer, over the standard library.

A task pod makes a handful of calls (fetch the attempt, send the log and the metadata, report),
all before or after the task's own code, and it starts once per attempt: `http.client` does
them with no import beyond what Python already holds, where a full client (httpx: its
transports, its pool, an SSL context built for every client even over plain HTTP) cost more
than the rest of the runner's start-up together (bench/README.md, "Runner start-up (p6)").

`HttpTransport` keeps each connection open for the next call (HTTP/1.1 keep-alive), one per
caller at a time (the log's and the metadata's shippers send from their own threads). A
connection the API closed while it sat idle is replaced before the request, or once after it
fails on that connection: every call the runner makes is safe to send twice (a log chunk
goes at its offset, the metadata whole, a report the API has already taken is acknowledged).
Over HTTPS it verifies the API's certificate against `SSL_CERT_FILE`, `SSL_CERT_DIR` or
certifi's bundle, as httpx did. It connects to the API directly: `PODTASK_API_URL` is the
address the operator gives its pods, inside the cluster, so proxy variables are not read.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import ssl

# What a connection that breaks raises: the socket's errors (refused, reset, timed out, TLS)
# and an answer that is not HTTP.
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class Timeout:
    """How long a call waits: to connect, and for each read of the answer."""

    read: float
    connect: float


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None
    timeout: Timeout


@dataclass(frozen=True)
class ApiResponse:
    status_code: int
    body: bytes = b""
    reason_phrase: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def json(self) -> Any:
        """The body as JSON; ValueError when it is not."""
        return json.loads(self.body)


Transport = Callable[[ApiRequest], ApiResponse]
"""Sends one request to the API; raises one of `TRANSPORT_ERRORS` when no answer came."""


class HttpTransport:
    """The API at `api_url` (http or https, with an optional path prefix)."""

    def __init__(self, api_url: str) -> None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the API's address must be an http(s) URL, got {api_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._ssl_context: ssl.SSLContext | None = None
        self._closed = False

    def __call__(self, request: ApiRequest) -> ApiResponse:
        connection, reused = self._connection(request.timeout)
        try:
            return self._exchange(connection, request)
        except TRANSPORT_ERRORS:
            connection.close()
            if not reused:
                raise
        # The API closed the kept connection meanwhile (its idle timeout): once more, afresh.
        connection = self._connect(request.timeout)
        try:
            return self._exchange(connection, request)
        except TRANSPORT_ERRORS:
            connection.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _exchange(self, connection: http.client.HTTPConnection, request: ApiRequest) -> ApiResponse:
        if connection.sock is not None:
            connection.sock.settimeout(request.timeout.read)
        connection.request(
            request.method, self._prefix + request.path, body=request.body, headers=request.headers
        )
        answer = connection.getresponse()
        body = answer.read()
        response = ApiResponse(answer.status, body, answer.reason, dict(answer.getheaders()))
        if answer.will_close:
            connection.close()
        else:
            self._keep(connection)
        return response

    def _connection(self, timeout: Timeout) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection still open (True), or a new one (False)."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return self._connect(timeout), False
            if _still_open(connection):
                return connection, True
            connection.close()

    def _connect(self, timeout: Timeout) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection
        if self._https:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout.connect, context=self._tls()
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout.connect)
        try:
            connection.connect()
        except TRANSPORT_ERRORS:
            connection.close()
            raise
        return connection

    def _keep(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(connection)
                return
        connection.close()

    def _tls(self) -> ssl.SSLContext:
        with self._lock:
            if self._ssl_context is None:
                self._ssl_context = _verifying_context()
            return self._ssl_context


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle connection can carry a request: nothing to read on it (a closed one
    reads as its end)."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _verifying_context() -> ssl.SSLContext:
    import ssl

    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
