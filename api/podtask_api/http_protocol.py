"""How uvicorn serves the API: `JsonErrorH11Protocol`, its HTTP/1.1 protocol answering
malformed requests in the API's JSON error shape, and `ApiServer`, which ends the event
streams when it stops.

uvicorn answers a request it cannot parse (a bad request line, a broken header, a wrong
Content-Length) itself, before the app sees it, with a plain-text 400. Clients of the API
read every error as `{"error": {...}}`, so this protocol writes that shape instead.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from podtask_api.errors import error_body

MALFORMED_REQUEST_MESSAGE = (
    "the request is not valid HTTP/1.1 (request line, headers or body framing): "
    "send a well-formed request"
)


def malformed_request_body() -> bytes:
    return json.dumps(error_body("bad_request", MALFORMED_REQUEST_MESSAGE)).encode()


class JsonErrorH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        body = malformed_request_body()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            for event in (
                h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                h11.Data(data=body),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event))
        except h11.LocalProtocolError:
            # A response had already begun on this connection: nothing more can be said on it.
            pass
        self.transport.close()


class ApiServer(uvicorn.Server):
    """uvicorn's server, which on stopping first calls the app's `state.stop_streams` (when it
    has one): a graceful shutdown waits for every response to end, and an event stream's
    client never hangs up."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        state = getattr(self.config.app, "state", None)
        stop_streams = getattr(state, "stop_streams", None)
        if stop_streams is not None:
            stop_streams()
        await super().shutdown(sockets)


def server_config(app: Any, *, host: str, port: int, log_level: str) -> uvicorn.Config:
    """How the API is served: by `python -m podtask_api` and by the tests alike."""
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, http=JsonErrorH11Protocol)
