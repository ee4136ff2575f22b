"""How the API stores an attempt's log in segments, and reads it back (`log_segments`), and
when an ended attempt's runner may still add to it (`live_attempts.log_refusal`). Pure."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from podtask._contract.attempt_logs import (
    HEAD_SEGMENTS,
    MAX_CHUNK_BYTES,
    MAX_LOG_OFFSET,
    SEGMENT_BYTES,
    TAIL_SEGMENTS,
    UNFINISHED_LINE,
    LogChunk,
    left_out_line,
)
from podtask._contract.wire import LABEL_ATTEMPT, LABEL_RUN
from podtask_api.live_attempts import attempt_refusal, log_refusal
from podtask_api.log_segments import (
    END_KEY,
    LABEL_LOG_SEGMENT,
    Piece,
    assembled_log,
    chunk_key,
    chunk_pieces,
    is_run_segment,
    may_drop_segments,
    piece_patch,
    segment_body,
    segment_name,
    segments_selector,
    segments_to_drop,
)

RUN = {"metadata": {"name": "run-abc", "namespace": "tasks", "uid": "uid-1"}}


def _segments(*chunks: LogChunk) -> list[dict[str, Any]]:
    """The segments the chunks' pieces make, as the cluster would hold them."""
    held: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for piece in chunk_pieces(chunk):
            if piece.segment not in held:
                held[piece.segment] = segment_body(RUN, 1, piece)
            held[piece.segment]["data"].update(piece.data)
    return list(held.values())


def test_a_chunk_within_a_segment_is_one_key_under_its_offset() -> None:
    pieces = chunk_pieces(LogChunk(offset=10, text="hello\n"))
    assert pieces == [Piece(0, {"000000000010": "hello\n"})]
    # The log's first chunk starts its first segment: created, not patched first.
    assert chunk_pieces(LogChunk(offset=0, text="hi\n")) == [Piece(0, {chunk_key(0): "hi\n"}, True)]
    assert chunk_key(3) < chunk_key(20) < chunk_key(SEGMENT_BYTES)


def test_a_chunk_across_a_segment_boundary_is_cut_where_a_character_starts() -> None:
    # "é" is two bytes; the boundary falls inside the one that straddles it.
    start = SEGMENT_BYTES - 2
    text = "aéé" + "b" * 10
    pieces = chunk_pieces(LogChunk(offset=start, text=text))
    assert [(p.segment, p.opens) for p in pieces] == [(0, False), (1, True)]
    assert pieces[0].data == {chunk_key(start): "aé"}
    assert pieces[1].data == {chunk_key(start + 3): "é" + "b" * 10}
    assert "".join(v for p in pieces for v in p.data.values()) == text


def test_the_final_chunk_records_where_the_log_ends() -> None:
    # In the same write as the last text of its segment (a short attempt's log: one write).
    pieces = chunk_pieces(LogChunk(offset=SEGMENT_BYTES * 2, text="bye\n", final=True))
    end = str(SEGMENT_BYTES * 2 + 4)
    assert pieces == [Piece(2, {chunk_key(SEGMENT_BYTES * 2): "bye\n", END_KEY: end}, True)]
    empty = chunk_pieces(LogChunk(offset=SEGMENT_BYTES, final=True))
    assert empty == [Piece(1, {END_KEY: str(SEGMENT_BYTES)})]
    # Text that fills its segment to the last byte: the end is the next segment's.
    filled = chunk_pieces(LogChunk(offset=SEGMENT_BYTES - 3, text="ab\n", final=True))
    assert filled == [
        Piece(0, {chunk_key(SEGMENT_BYTES - 3): "ab\n"}),
        Piece(1, {END_KEY: str(SEGMENT_BYTES)}),
    ]


def test_a_chunk_carries_at_most_one_segment_of_text() -> None:
    """Made by the runner (a dataclass) and read by the API (pydantic validating it as
    FastAPI does a body): the same rules."""
    body = TypeAdapter(LogChunk)
    LogChunk(offset=0, text="x" * MAX_CHUNK_BYTES)
    body.validate_python({"offset": 0, "text": "x" * MAX_CHUNK_BYTES})
    with pytest.raises(ValueError, match="at most"):
        LogChunk(offset=0, text="é" * (MAX_CHUNK_BYTES // 2 + 1))
    with pytest.raises(ValidationError, match="at most"):
        body.validate_python({"offset": 0, "text": "é" * (MAX_CHUNK_BYTES // 2 + 1)})
    for offset in (-1, MAX_LOG_OFFSET + 1):
        with pytest.raises(ValueError, match="offset must be from 0"):
            LogChunk(offset=offset, text="x")
        with pytest.raises(ValidationError, match="offset must be from 0"):
            body.validate_python({"offset": offset, "text": "x"})


def test_a_segment_is_labelled_named_and_owned_by_its_run() -> None:
    body = segment_body(RUN, 2, Piece(5, {chunk_key(0): "x"}))
    meta = body["metadata"]
    assert meta["name"] == segment_name("run-abc", 2, 5) == "run-abc-2-log-5"
    assert meta["labels"][LABEL_RUN] == "run-abc"
    assert meta["labels"][LABEL_ATTEMPT] == "2"
    assert meta["labels"][LABEL_LOG_SEGMENT] == "5"
    owner = meta["ownerReferences"][0]
    assert owner["uid"] == "uid-1" and owner["kind"] == "TaskRun"
    # Not blocking the run's deletion: that would need update on taskruns/finalizers.
    assert "blockOwnerDeletion" not in owner
    assert segments_selector("run-abc", 2) == (
        f"{LABEL_RUN}=run-abc,{LABEL_ATTEMPT}=2,{LABEL_LOG_SEGMENT}"
    )
    assert is_run_segment(body, RUN)
    assert not is_run_segment(body, {"metadata": {"name": "run-abc", "uid": "uid-2"}})
    # The write into an existing segment holds only if it is still this run's.
    assert piece_patch(RUN, Piece(5, {"000000000001": "y"}))[0] == {
        "op": "test",
        "path": "/metadata/ownerReferences/0/uid",
        "value": "uid-1",
    }


def test_the_head_stays_and_the_tail_keeps_the_last_segments() -> None:
    created = HEAD_SEGMENTS + TAIL_SEGMENTS + 3
    existing = range(created + 1)
    dropped = segments_to_drop(existing, created)
    assert dropped == list(range(HEAD_SEGMENTS, created - TAIL_SEGMENTS + 1))
    kept = [i for i in existing if i not in dropped]
    assert kept == [*range(HEAD_SEGMENTS), *range(created - TAIL_SEGMENTS + 1, created + 1)]
    last_kept_whole = HEAD_SEGMENTS + TAIL_SEGMENTS - 1
    assert segments_to_drop(range(last_kept_whole + 1), last_kept_whole) == []
    assert not may_drop_segments(last_kept_whole) and may_drop_segments(last_kept_whole + 1)


def test_the_log_reads_back_in_order_whatever_order_its_chunks_came_in() -> None:
    first = LogChunk(offset=0, text="one\n")
    second = LogChunk(offset=4, text="two\n")
    last = LogChunk(offset=8, text="three\n", final=True)
    assert assembled_log(_segments(last, first, second, first), ended=True) == "one\ntwo\nthree\n"


def test_no_segment_is_no_log() -> None:
    assert assembled_log([], ended=True) is None


def test_what_was_not_kept_is_said_where_it_was() -> None:
    segments = _segments(
        LogChunk(offset=0, text="start"),
        LogChunk(offset=1005, text="end\n"),
        LogChunk(offset=1009, final=True),
    )
    assert assembled_log(segments, ended=True) == "start\n" + left_out_line(1000) + "end\n"


def test_a_log_cut_off_at_its_end_says_so_once_the_attempt_ended() -> None:
    segments = _segments(LogChunk(offset=0, text="working"))
    assert assembled_log(segments, ended=False) == "working"
    assert assembled_log(segments, ended=True) == "working\n" + UNFINISHED_LINE
    # The runner's last word says how long the log was: a missing end is bytes not kept.
    short = _segments(LogChunk(offset=0, text="a\n"), LogChunk(offset=10, final=True))
    assert assembled_log(short, ended=True) == "a\n" + left_out_line(8)


def test_overlapping_chunks_are_read_once() -> None:
    segments = _segments(LogChunk(offset=0, text="abcdef"), LogChunk(offset=3, text="defgh\n"))
    assert assembled_log(segments, ended=False) == "abcdefgh\n"


def _ended(why_phase: str) -> Any:
    return attempt_refusal({"metadata": {"name": "r"}, "status": {"phase": why_phase}}, 1)


def test_an_ended_attempts_runner_may_add_to_its_log_while_its_pod_runs() -> None:
    ended = _ended("Canceled")
    assert ended is not None and ended.details["why"] == "the run finished as Canceled"
    running = {"status": {"phase": "Running"}}
    assert log_refusal(ended, running) is None
    assert log_refusal(ended, {"status": {"phase": "Failed"}}) is ended
    assert log_refusal(ended, None) is ended
    # Anything but an ended attempt is refused whatever the pod does.
    not_started = attempt_refusal(
        {"metadata": {"name": "r"}, "status": {"phase": "Executing", "attempt": 1}}, 3
    )
    assert not_started is not None and log_refusal(not_started, running) is not_started
    assert log_refusal(None, None) is None
