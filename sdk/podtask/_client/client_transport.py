"""Sending an `ApiCall` over HTTP (httpx): one thin blocking transport, one thin awaiting one.

They own the connections and nothing else: what to send and how to read the answer is the
call's (`podtask._client.api_calls`). A transport failure becomes `PodtaskConnectionError`, an
answer that is not a success becomes `PodtaskApiError`. Only the client imports this
module, when it is first built, so that declaring a task does not import httpx.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncGenerator, Generator
from typing import Any, TypeVar

import httpx

from podtask._client.api_calls import ApiCall
from podtask._client.client_config import ClientConfig, PodtaskConnectionError, read_answer

R = TypeVar("R")


def _answer(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    return read_answer(response.status_code, body, response.text)


def _unreachable(config: ClientConfig, exc: httpx.TransportError) -> PodtaskConnectionError:
    return PodtaskConnectionError(
        f"cannot reach the podtask API at {config.api_url}: {type(exc).__name__}: {exc}"
    )


def _stream_timeout(timeout: float, call: ApiCall[Any]) -> httpx.Timeout:
    # A followed log may stay quiet for long while the task works: no read timeout. An event
    # stream says something every so often: silence past its limit is a dead connection.
    if call.open_ended:
        return httpx.Timeout(timeout, read=call.silence_limit)
    return httpx.Timeout(timeout)


class BlockingTransport:
    """Blocking calls over one `httpx.Client`: the one given, else one made on first use."""

    def __init__(self, config: ClientConfig, timeout: float, http: httpx.Client | None) -> None:
        self._config = config
        self._timeout = timeout
        self._given = http
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        if self._given is not None:
            return self._given
        with self._lock:
            if self._http is None:
                self._http = httpx.Client(timeout=self._timeout)
            return self._http

    def send(self, call: ApiCall[R]) -> R:
        try:
            response = self._client().request(**call.request(self._config))
        except httpx.TransportError as exc:
            raise _unreachable(self._config, exc) from exc
        return call.read(_answer(response))

    def stream_text(self, call: ApiCall[Any]) -> Generator[str]:
        """The answer's body as text, in pieces as they come."""
        timeout = _stream_timeout(self._timeout, call)
        try:
            with self._client().stream(**call.request(self._config), timeout=timeout) as answer:
                if not answer.is_success:
                    answer.read()
                    _answer(answer)
                yield from answer.iter_text()
        except httpx.TransportError as exc:
            raise _unreachable(self._config, exc) from exc

    def close(self) -> None:
        """Close the connections this transport opened (not the client it was given)."""
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()


class AwaitingTransport:
    """Awaited calls: over the `httpx.AsyncClient` given, else one per event loop (an
    AsyncClient belongs to the loop it first ran on)."""

    def __init__(
        self, config: ClientConfig, timeout: float, http: httpx.AsyncClient | None
    ) -> None:
        self._config = config
        self._timeout = timeout
        self._given = http
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._per_loop = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _client(self) -> httpx.AsyncClient:
        if self._given is not None:
            return self._given
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._per_loop.get(loop)
            if found is None:
                found = self._per_loop[loop] = httpx.AsyncClient(timeout=self._timeout)
            return found

    async def send(self, call: ApiCall[R]) -> R:
        try:
            response = await self._client().request(**call.request(self._config))
        except httpx.TransportError as exc:
            raise _unreachable(self._config, exc) from exc
        return call.read(_answer(response))

    async def stream_text(self, call: ApiCall[Any]) -> AsyncGenerator[str]:
        """The answer's body as text, in pieces as they come."""
        timeout = _stream_timeout(self._timeout, call)
        try:
            request = call.request(self._config)
            async with self._client().stream(**request, timeout=timeout) as answer:
                if not answer.is_success:
                    await answer.aread()
                    _answer(answer)
                async for text in answer.aiter_text():
                    yield text
        except httpx.TransportError as exc:
            raise _unreachable(self._config, exc) from exc

    async def aclose(self) -> None:
        """Close this event loop's connections (not the client it was given)."""
        with self._lock:
            http = self._per_loop.pop(asyncio.get_running_loop(), None)
        if http is not None:
            await http.aclose()
