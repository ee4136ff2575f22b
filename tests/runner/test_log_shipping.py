"""The runner's copy of its output for the API (`log_shipping`): what the buffer keeps, in
which chunks it goes, and how the shipper meets a failing or an ended attempt. The API is
played through `played_callbacks` (`AttemptCallbacks` is the real client)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
from runner_fixtures import played_callbacks

from podtask._contract.attempt_logs import MAX_CHUNK_BYTES, LogChunk
from podtask_runner.log_shipping import LogBuffer, LogShipper


def _drain(buffer: LogBuffer, *, final: bool = False) -> list[LogChunk]:
    chunks = []
    while (chunk := buffer.next_chunk(final=final)) is not None:
        chunks.append(chunk)
        buffer.sent(chunk)
    return chunks


def test_chunks_carry_the_text_at_its_offsets() -> None:
    buffer = LogBuffer()
    buffer.write(b"hello\n")
    assert _drain(buffer) == [LogChunk(offset=0, text="hello\n")]
    buffer.write(b"world\n")
    assert _drain(buffer) == [LogChunk(offset=6, text="world\n")]
    assert _drain(buffer) == []


def test_a_character_split_between_two_writes_is_whole_and_bad_bytes_are_replaced() -> None:
    buffer = LogBuffer()
    encoded = "é".encode()
    buffer.write(b"a" + encoded[:1])
    buffer.write(encoded[1:] + b"\xff\n")
    text = "".join(c.text for c in _drain(buffer))
    assert text == "aé\ufffd\n"
    buffer.write(encoded[:1])
    buffer.finish()
    assert [c.text for c in _drain(buffer, final=True)] == ["\ufffd"]


def test_a_chunk_is_at_most_one_segment_and_ends_on_a_character() -> None:
    buffer = LogBuffer(head_bytes=10 * MAX_CHUNK_BYTES, tail_bytes=10 * MAX_CHUNK_BYTES)
    buffer.write(b"x" + "é".encode() * MAX_CHUNK_BYTES)
    chunks = _drain(buffer)
    assert all(len(c.text.encode()) <= MAX_CHUNK_BYTES for c in chunks)
    assert chunks[0].end == MAX_CHUNK_BYTES - 1  # the last "é" would have been cut
    assert [c.offset for c in chunks[1:]] == [c.end for c in chunks[:-1]]
    assert "".join(c.text for c in chunks) == "x" + "é" * MAX_CHUNK_BYTES


def test_a_backlog_keeps_the_head_and_the_tail_and_the_offsets_show_the_gap() -> None:
    buffer = LogBuffer(head_bytes=10, tail_bytes=8)
    buffer.write(b"0123456789" + b"a" * 100 + b"TAIL-END")
    chunks = _drain(buffer)
    assert [(c.offset, c.text) for c in chunks] == [(0, "0123456789"), (110, "TAIL-END")]


def test_the_head_keeps_whole_characters() -> None:
    buffer = LogBuffer(head_bytes=3, tail_bytes=2)
    buffer.write("abé".encode() + b"-" * 20 + b"zz")
    assert [c.text for c in _drain(buffer)] == ["abé", "zz"]


def test_what_was_trimmed_while_a_chunk_was_on_its_way_is_not_sent_twice() -> None:
    buffer = LogBuffer(head_bytes=0, tail_bytes=8)
    buffer.write(b"abcdefgh")
    chunk = buffer.next_chunk()
    assert chunk == LogChunk(offset=0, text="abcdefgh")
    buffer.write(b"ijkl")  # trims "abcd" while the chunk is being sent
    buffer.sent(chunk)
    assert _drain(buffer) == [LogChunk(offset=8, text="ijkl")]


def test_the_last_chunk_is_final_and_an_empty_log_says_where_it_ends() -> None:
    buffer = LogBuffer()
    buffer.write(b"bye\n")
    buffer.finish()
    assert _drain(buffer, final=True) == [LogChunk(offset=0, text="bye\n", final=True)]
    assert _drain(buffer, final=True) == []
    empty = LogBuffer()
    empty.finish()
    assert _drain(empty, final=True) == [LogChunk(offset=0, final=True)]


def _shipper(
    answer: Callable[[httpx.Request], httpx.Response],
) -> tuple[LogBuffer, LogShipper, list[dict[str, object]], list[str]]:
    sent: list[dict[str, object]] = []
    said: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/runner/runs/run-1/attempts/1/log"
        sent.append(json.loads(request.content))
        return answer(request)

    buffer = LogBuffer()
    return buffer, LogShipper(buffer, played_callbacks(handle, 1), said.append), sent, said


def test_the_shipper_sends_what_is_new_then_the_rest_marked_final() -> None:
    buffer, shipper, sent, said = _shipper(lambda _: httpx.Response(204))
    buffer.write(b"one\n")
    shipper.flush(final=False)
    buffer.write(b"two\n")
    shipper.close()
    assert sent == [
        {"offset": 0, "text": "one\n", "final": False},
        {"offset": 4, "text": "two\n", "final": True},
    ]
    assert said == []


def test_a_failed_send_is_said_once_and_tried_again_at_the_next_flush() -> None:
    answers = [httpx.Response(503), httpx.Response(503), httpx.Response(204)]
    buffer, shipper, sent, said = _shipper(lambda _: answers.pop(0))
    buffer.write(b"kept\n")
    shipper.flush(final=False)
    shipper.flush(final=False)
    shipper.flush(final=False)
    assert [s["offset"] for s in sent] == [0, 0, 0]
    assert len(said) == 1 and "could not send the log" in said[0]
    assert buffer.next_chunk() is None


def test_an_ended_attempt_stops_the_shipping_quietly() -> None:
    ended = {
        "error": {
            "code": "attempt_ended",
            "message": "m",
            "details": {"why": "the run finished as Canceled"},
        }
    }
    buffer, shipper, sent, said = _shipper(lambda _: httpx.Response(401, json=ended))
    buffer.write(b"late line\n")
    shipper.flush(final=False)
    buffer.write(b"later line\n")
    shipper.close()
    assert len(sent) == 1
    assert said == []
