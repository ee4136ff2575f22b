"""The client's pure side of the runs' event streams (`podtask._client.event_streams`): server-
sent events read from text in pieces, what each event yields, the requests, and when to
reconnect."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from podtask._client.client_config import PodtaskApiError, PodtaskConnectionError
from podtask._client.event_streams import (
    FIRST_RECONNECT_SECONDS,
    MAX_RECONNECT_SECONDS,
    MAX_RECONNECT_TRIES,
    EventStreamParser,
    Reconnects,
    ServerEvent,
    one_run,
    run_list,
)


def parsed(*pieces: str) -> list[ServerEvent]:
    parser = EventStreamParser()
    return [event for piece in pieces for event in parser.feed(piece)]


def test_events_with_every_line_ending_and_in_any_pieces() -> None:
    text = 'event: run\nid: 7\ndata: {"a":1}\n\n'
    expected = [ServerEvent("run", '{"a":1}', "7")]
    assert parsed(text) == expected
    assert parsed(*text) == expected  # a character at a time
    assert parsed(text.replace("\n", "\r\n")) == expected
    assert parsed(*text.replace("\n", "\r\n")) == expected  # CR and LF in separate pieces
    assert parsed(text.replace("\n", "\r")) == expected


def test_comments_multiline_data_ids_and_events_without_data() -> None:
    events = parsed(
        ": keepalive\n\n",
        "event: run\ndata:first\ndata: second\n\n",  # no space after the colon is fine too
        "id: 9\nevent: nothing\n\n",  # no data: not dispatched, but the id stays
        "data\n\n",  # a field without a colon: an empty value
        "event: end\ndata: {}\nretry: 100\nunknown: x\n\n",
    )
    assert events == [
        ServerEvent("run", "first\nsecond", None),
        ServerEvent("message", "", "9"),
        ServerEvent("end", "{}", "9"),
    ]


def test_a_restart_drops_the_half_sent_event_and_keeps_the_last_id() -> None:
    parser = EventStreamParser()
    assert parser.feed('id: 3\nevent: run\ndata: {}\n\nevent: run\nid: 4\ndata: {"x"') == [
        ServerEvent("run", "{}", "3")
    ]
    parser.restart()
    assert parser.last_event_id == "4"  # as the spec: set when its line was read
    assert parser.feed("event: end\ndata: {}\n\n") == [ServerEvent("end", "{}", "4")]


def run_event(status: str, version: int) -> str:
    shown = json.dumps({"id": "run-1", "status": status})
    return f"event: run\nid: {version}\ndata: {shown}\n\n"


def test_one_run_yields_each_state_and_finishes_at_the_end() -> None:
    stream = one_run("run-1")
    assert stream.path == "/api/v1/runs/run-1/events" and stream.params == ()
    assert "Last-Event-ID" not in stream.call().headers
    assert [r["status"] for r in stream.read(run_event("Queued", 3) + ": keepalive\n\n")] == [
        "Queued"
    ]
    assert stream.call().headers["Last-Event-ID"] == "3"
    assert stream.call().open_ended and stream.call().silence_limit
    texts = run_event("Completed", 5) + "event: end\ndata: {}\n\n" + run_event("Nope", 6)
    assert [r["status"] for r in stream.read(texts)] == ["Completed"]
    assert stream.finished


def test_one_run_deleted_is_a_404() -> None:
    stream = one_run("run/1")
    assert stream.path == "/api/v1/runs/run%2F1/events"
    with pytest.raises(PodtaskApiError) as deleted:
        stream.read('event: deleted\nid: 9\ndata: {"id": "run/1"}\n\n')
    assert (deleted.value.status, deleted.value.code) == (404, "run_not_found")
    assert stream.finished
    with pytest.raises(PodtaskApiError):
        stream.reconnect_after(deleted.value)


def test_a_list_takes_the_filters_of_list_runs_and_skips_deletions() -> None:
    since = datetime(2024, 5, 1, tzinfo=UTC)
    stream = run_list(status=["Queued", "Executing"], task="t", tag="vip", created_from=since)
    assert stream.path == "/api/v1/runs/events"
    assert list(stream.params) == [
        ("status", "Queued"),
        ("status", "Executing"),
        ("tag", "vip"),
        ("taskIdentifier", "t"),
        ("createdFrom", "2024-05-01T00:00:00Z"),
    ]
    read = stream.read('event: deleted\ndata: {"id": "a"}\n\n' + run_event("Queued", 2))
    assert read == [{"id": "run-1", "status": "Queued"}] and not stream.finished
    with pytest.raises(TypeError, match="unknown run filter"):
        run_list(colour="red")  # type: ignore[call-arg]


def test_reconnecting_waits_longer_while_the_api_is_away_and_gives_up() -> None:
    away = PodtaskConnectionError("refused")
    reconnects = Reconnects()
    waits = [reconnects.after(away) for _ in range(MAX_RECONNECT_TRIES)]
    assert waits[0] == FIRST_RECONNECT_SECONDS and waits[1] == 2 * FIRST_RECONNECT_SECONDS
    assert max(waits) == MAX_RECONNECT_SECONDS and waits == sorted(waits)
    with pytest.raises(PodtaskConnectionError):
        reconnects.after(away)
    reconnects.connected()
    assert reconnects.after(PodtaskApiError(503, "cluster_unavailable", "x")) == 0.5
    assert reconnects.after(None) > 0  # the API closed the stream: open it again
    for refused in (401, 404, 422):
        with pytest.raises(PodtaskApiError):
            Reconnects().after(PodtaskApiError(refused, "no", "no"))


def test_a_reconnect_forgets_the_half_read_event() -> None:
    stream = one_run("run-1")
    stream.read(run_event("Queued", 3) + 'event: run\nid: 4\ndata: {"id"')
    assert stream.reconnect_after(PodtaskConnectionError("dropped")) == FIRST_RECONNECT_SECONDS
    assert stream.read(run_event("Executing", 5)) == [{"id": "run-1", "status": "Executing"}]
