"""Reading the API's event streams in tests: the raw text of a stream, and its events parsed
by the client's own parser (`podtask._client.event_streams`)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
from api_fixtures import API_KEY

from podtask._client.event_streams import EventStreamParser, ServerEvent

# Seconds a test waits for the next event at most: generous, for a loaded machine.
EVENT_WAIT_SECONDS = 60.0


class EventStream:
    """An open event stream: its events one at a time (`next_event`), as they come."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._texts = response.iter_text()
        self._parser = EventStreamParser()
        self._ready: list[ServerEvent] = []
        self.text = ""  # everything read so far, comments included
        self.ended = False  # the API closed the stream

    def next_event(self) -> ServerEvent:
        """The next event; AssertionError when the stream closes first."""
        while not self._ready:
            try:
                text = next(self._texts)
            except StopIteration:
                self.ended = True
                raise AssertionError(f"the stream closed; it said:\n{self.text}") from None
            self.text += text
            self._ready += self._parser.feed(text)
        return self._ready.pop(0)

    def next_run(self) -> dict[str, Any]:
        """The run of the next event, which must be `event: run`."""
        event = self.next_event()
        assert event.event == "run", event
        shown: dict[str, Any] = json.loads(event.data)
        return shown

    def read_to_end(self) -> list[ServerEvent]:
        """Every event left, until the API closes the stream."""
        events = []
        while True:
            try:
                events.append(self.next_event())
            except AssertionError:
                if self.ended:
                    return events
                raise

    def until_text(self, wanted: str) -> None:
        """Read until the raw text holds `wanted` (a comment, say)."""
        while wanted not in self.text:
            try:
                text = next(self._texts)
            except StopIteration:
                raise AssertionError(f"the stream closed; it said:\n{self.text}") from None
            self.text += text
            self._ready += self._parser.feed(text)


@contextlib.contextmanager
def event_stream(
    url: str,
    path: str,
    params: Any = None,
    headers: dict[str, str] | None = None,
    api_key: str = API_KEY,
) -> Iterator[EventStream]:
    """The stream at `path` of the API at `url`, open (its answer a 200)."""
    timeout = httpx.Timeout(30, read=EVENT_WAIT_SECONDS)
    auth = {"Authorization": f"Bearer {api_key}", **(headers or {})}
    with (
        httpx.Client(base_url=url, timeout=timeout) as http,
        http.stream("GET", path, params=params, headers=auth) as response,
    ):
        if response.status_code != 200:
            response.read()
            raise AssertionError(f"{response.status_code}: {response.text}")
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)
