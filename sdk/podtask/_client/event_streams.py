"""Following runs through the API's event streams, without I/O: the requests, the reading of
server-sent events, what each event yields, and when to reconnect.

`GET /api/v1/runs/{id}/events` sends the run's current state, each change after, and `end`
after a final status; `GET /api/v1/runs/events?<filters>` each change of the runs that pass
the filters. `podtask._client.run_subscriptions` sends these requests and reconnects, with the
id of the last event it got (`Last-Event-ID`), when a connection drops.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Unpack
from urllib.parse import quote

from podtask._client.api_calls import ApiCall, RunFilters, run_filter_params
from podtask._client.client_config import PodtaskApiError, is_passing_trouble
from podtask.errors import PodtaskError

# The API says `: keepalive` every 15 s; this long without a byte, the connection is dead.
SILENCE_LIMIT_SECONDS = 60.0
# Waits before reconnecting after a connection failed: doubling from the first to the last.
FIRST_RECONNECT_SECONDS = 0.5
MAX_RECONNECT_SECONDS = 5.0
# Connections that fail one after the other before a subscription gives up (about two
# minutes: long enough for an API to be restarted or rolled).
MAX_RECONNECT_TRIES = 30


@dataclass(frozen=True)
class ServerEvent:
    """One server-sent event: its type (`event:`), its data, and the last id seen."""

    event: str = "message"
    data: str = ""
    id: str | None = None


class EventStreamParser:
    """Server-sent events from text that arrives in pieces, by the WHATWG rules: lines end
    with CRLF, LF or CR; `field: value` (one optional space after the colon); a line that
    starts with `:` is a comment; a blank line dispatches the event; `id` stays until
    changed."""

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self._line = ""
        self._after_cr = False
        self._reset_event()

    def _reset_event(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._has_data = False

    def restart(self) -> None:
        """Forget the event a dropped connection left half-sent (the last id stays)."""
        self._line = ""
        self._after_cr = False
        self._reset_event()

    def feed(self, text: str) -> list[ServerEvent]:
        """The events `text` completes."""
        events: list[ServerEvent] = []
        for char in text:
            if char == "\n" and self._after_cr:
                self._after_cr = False  # the LF of a CRLF
                continue
            self._after_cr = char == "\r"
            if char in "\r\n":
                event = self._line_done(self._line)
                self._line = ""
                if event is not None:
                    events.append(event)
            else:
                self._line += char
        return events

    def _line_done(self, line: str) -> ServerEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "id" and "\0" not in value:
            self.last_event_id = value or None
        return None

    def _dispatch(self) -> ServerEvent | None:
        event, data, has_data = self._event or "message", "\n".join(self._data), self._has_data
        self._reset_event()
        if not has_data:
            return None
        return ServerEvent(event, data, self.last_event_id)


class Reconnects:
    """When to reconnect a dropped stream: soon after a drop, with growing waits while the
    API cannot be reached or fails (5xx, 429), never after it refused (4xx), and not after
    `MAX_RECONNECT_TRIES` failures in a row."""

    def __init__(self) -> None:
        self._failures = 0

    def connected(self) -> None:
        self._failures = 0

    def after(self, trouble: PodtaskError | None) -> float:
        """Seconds to wait before reconnecting after the stream ended (`trouble` None: the
        API closed it) or failed with `trouble`; raises `trouble` when it is not passing."""
        if trouble is not None and not is_passing_trouble(trouble):
            raise trouble
        self._failures += 1
        if trouble is not None and self._failures > MAX_RECONNECT_TRIES:
            raise trouble
        wait = FIRST_RECONNECT_SECONDS * 2 ** (self._failures - 1)
        return float(min(MAX_RECONNECT_SECONDS, wait))


@dataclass
class RunStream:
    """One subscription: the stream it reads (`path`, `params`), what it has read of it, and
    what its events yield.

    `run_id` for the stream of one run: it ends after `end`, and its run deleted raises
    `PodtaskApiError` (404, as `get_run` would). A list's stream yields the runs that
    change, not their removal."""

    path: str
    params: Sequence[tuple[str, str]] = ()
    run_id: str | None = None
    finished: bool = field(default=False, init=False)
    parser: EventStreamParser = field(default_factory=EventStreamParser, init=False)
    reconnects: Reconnects = field(default_factory=Reconnects, init=False)

    def call(self) -> ApiCall[Any]:
        """The request that opens the stream, or reopens it after the last event read."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.parser.last_event_id is not None:
            headers["Last-Event-ID"] = self.parser.last_event_id
        return ApiCall(
            "GET",
            self.path,
            lambda answer: answer,
            params=self.params,
            headers=headers,
            open_ended=True,
            silence_limit=SILENCE_LIMIT_SECONDS,
        )

    def read(self, text: str) -> list[dict[str, Any]]:
        """The runs the next piece of the stream's text shows (none after the end)."""
        self.reconnects.connected()
        runs: list[dict[str, Any]] = []
        for event in self.parser.feed(text):
            if self.finished:
                break
            runs += self._event(event)
        return runs

    def _event(self, event: ServerEvent) -> list[dict[str, Any]]:
        if event.event == "run":
            shown = json.loads(event.data)
            return [shown] if isinstance(shown, dict) else []
        if event.event == "end":
            self.finished = True
        elif event.event == "deleted" and self.run_id is not None:
            self.finished = True
            raise PodtaskApiError(
                404, "run_not_found", f"run {self.run_id!r} was deleted", {"id": self.run_id}
            )
        return []

    def reconnect_after(self, trouble: PodtaskError | None) -> float:
        """Seconds to wait before reopening the stream, which ended (`trouble` None) or
        failed; raises `trouble` when the subscription is to give up."""
        if self.finished and trouble is not None:
            raise trouble
        delay = self.reconnects.after(trouble)
        self.parser.restart()
        return delay


def one_run(run_id: str) -> RunStream:
    """The subscription to one run: its states until a final one."""
    return RunStream(f"/api/v1/runs/{quote(run_id, safe='')}/events", run_id=run_id)


def run_list(**filters: Unpack[RunFilters]) -> RunStream:
    """The subscription to the runs that pass `filters` (as `list_runs` takes them)."""
    return RunStream("/api/v1/runs/events", run_filter_params(**filters))
