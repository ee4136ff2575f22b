"""The runner's HTTP (`api_transport`) against a real HTTP/1.1 server on a local port: kept
connections, a connection the server closed while idle, a path prefix, an API out of reach."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from podtask_runner.api_transport import (
    TRANSPORT_ERRORS,
    ApiRequest,
    HttpTransport,
    Timeout,
)

# Not unit (tests/tiers.py): serves HTTP on a socket.
pytestmark = pytest.mark.component

TIMEOUT = Timeout(read=10.0, connect=5.0)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str, bytes, int]]] = []
    # Close each connection after its answer (without saying so), as an idle timeout would.
    drop_after_answer: ClassVar[bool] = False

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        Handler.seen.append((self.command, self.path, body, id(self.connection)))
        payload = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()
        if Handler.drop_after_answer:
            self.close_connection = True

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Handler.seen = []
    Handler.drop_after_answer = False
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def request(method: str = "GET", path: str = "/x", body: bytes | None = None) -> ApiRequest:
    return ApiRequest(method, path, {"Authorization": "Bearer t"}, body, TIMEOUT)


def test_calls_share_one_kept_connection(server: str) -> None:
    transport = HttpTransport(server)
    try:
        first = transport(request())
        second = transport(request("POST", "/y", b'{"a":1}'))
    finally:
        transport.close()
    assert first.status_code == second.status_code == 200
    assert second.json() == {"ok": True}
    assert [(m, p, b) for m, p, b, _ in Handler.seen] == [
        ("GET", "/x", b""),
        ("POST", "/y", b'{"a":1}'),
    ]
    assert Handler.seen[0][3] == Handler.seen[1][3]  # the same connection


def test_a_connection_the_server_closed_is_replaced(server: str) -> None:
    Handler.drop_after_answer = True
    transport = HttpTransport(server)
    try:
        answers = [transport(request()).status_code for _ in range(3)]
    finally:
        transport.close()
    assert answers == [200, 200, 200]
    assert len(Handler.seen) == 3


def test_the_apis_path_prefix_is_kept(server: str) -> None:
    transport = HttpTransport(server + "/base/")
    try:
        transport(request(path="/api/v1/z"))
    finally:
        transport.close()
    assert Handler.seen[0][1] == "/base/api/v1/z"


def test_an_api_out_of_reach_raises_a_transport_error() -> None:
    transport = HttpTransport("http://127.0.0.1:9")
    with pytest.raises(TRANSPORT_ERRORS):
        transport(request())


def test_only_http_addresses_are_taken() -> None:
    with pytest.raises(ValueError, match="http"):
        HttpTransport("ftp://api")
