"""How the API stores an attempt's log: ConfigMaps of one segment each, owned by the run.

The runner sends its output as `LogChunk`s (`podtask._contract.attempt_logs`). Segment `k`
of attempt `N` of run `R` is the ConfigMap `R-N-log-k`, holding the output's bytes from
`k * SEGMENT_BYTES` on; each chunk lands in it under its offset as key (`chunk_key`), and
the runner's last chunk adds `end`, the length of the whole output. So an append is one
patch that adds a key: nothing is read first, a chunk sent twice writes the same key, and
no write rewrites more than one segment. Creating segment `k` deletes the segments after
the head that fell out of the tail (`segments_to_drop`); reading a log puts the chunks
back in order and says where something is missing (`assembled_log`).

Each segment's ownerReference names the TaskRun, so the garbage collector deletes the log
with its run (after the run retention), on any cluster. It does not block the run's
deletion: setting `blockOwnerDeletion` would need a permission on the run's finalizers
that the API has no other use for. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from podtask._contract.attempt_logs import (
    HEAD_SEGMENTS,
    SEGMENT_BYTES,
    TAIL_SEGMENTS,
    UNFINISHED_LINE,
    LogChunk,
    left_out_line,
)
from podtask._contract.bounded_text import unicode_text
from podtask._contract.wire import (
    API_VERSION,
    GROUP,
    LABEL_ATTEMPT,
    LABEL_MANAGED_BY,
    LABEL_RUN,
    MANAGED_BY,
    TASK_RUN_KIND,
)

# On every segment, its index; with the run's and the attempt's labels it finds them all.
LABEL_LOG_SEGMENT = f"{GROUP}/log-segment"
# The key of the runner's last word: how long the whole output was.
END_KEY = "end"
_OFFSET_DIGITS = 12


def segment_name(run_id: str, attempt: int, index: int) -> str:
    return f"{run_id}-{attempt}-log-{index}"


def segments_selector(run_id: str, attempt: int) -> str:
    return f"{LABEL_RUN}={run_id},{LABEL_ATTEMPT}={attempt},{LABEL_LOG_SEGMENT}"


def chunk_key(offset: int) -> str:
    """A ConfigMap key that sorts as the offset does."""
    return f"{offset:0{_OFFSET_DIGITS}d}"


@dataclass(frozen=True)
class Piece:
    """What one chunk writes into one segment, in one write: `data`'s values under its keys.
    `opens`: its text is the first of the segment (from the segment's first byte, or a few
    bytes in where the segment before ran long to end on a whole character), so the segment
    is new as a rule: created first, not patched first (a patch of a segment not there yet
    is a request for nothing)."""

    segment: int
    data: dict[str, str]
    opens: bool = False


def _char_start(data: bytes, index: int) -> int:
    while index < len(data) and data[index] & 0xC0 == 0x80:
        index += 1
    return index


def chunk_pieces(chunk: LogChunk) -> list[Piece]:
    """The writes of `chunk`: one a segment it touches (cut where a character starts, so a
    segment may run a few bytes long), then `end` for the final chunk."""
    # A lone surrogate (only a client other than the runner sends one) takes 3 bytes, as
    # the U+FFFD that replaces it does: the offsets stay right.
    data = unicode_text(chunk.text).encode()
    offset = chunk.offset
    pieces: list[Piece] = []
    while data:
        segment = offset // SEGMENT_BYTES
        room = (segment + 1) * SEGMENT_BYTES - offset
        cut = _char_start(data, min(room, len(data)))
        # The chunk's text after the first piece begins a segment (a few bytes in, at most,
        # where the segment before ran long to end on a whole character).
        opens = bool(pieces) or offset == segment * SEGMENT_BYTES
        pieces.append(Piece(segment, {chunk_key(offset): data[:cut].decode()}, opens))
        data = data[cut:]
        offset += cut
    if chunk.final:
        segment = chunk.end // SEGMENT_BYTES
        if pieces and pieces[-1].segment == segment:
            # The end goes in the same write as the last text of its segment.
            pieces[-1].data[END_KEY] = str(chunk.end)
        else:
            pieces.append(Piece(segment, {END_KEY: str(chunk.end)}))
    return pieces


def segment_body(run: Mapping[str, Any], attempt: int, piece: Piece) -> dict[str, Any]:
    """A new segment ConfigMap that holds `piece`, owned by `run`."""
    meta = run["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": segment_name(meta["name"], attempt, piece.segment),
            "namespace": meta.get("namespace"),
            "labels": {
                LABEL_RUN: meta["name"],
                LABEL_ATTEMPT: str(attempt),
                LABEL_LOG_SEGMENT: str(piece.segment),
                LABEL_MANAGED_BY: MANAGED_BY,
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": TASK_RUN_KIND,
                    "name": meta["name"],
                    "uid": meta["uid"],
                }
            ],
        },
        "data": dict(piece.data),
    }


def piece_patch(run: Mapping[str, Any], piece: Piece) -> list[dict[str, Any]]:
    """The JSON patch that adds `piece` to its segment, if the segment is this run's (one of
    a deleted run of the same name may not be collected yet)."""
    return [
        {"op": "test", "path": "/metadata/ownerReferences/0/uid", "value": run["metadata"]["uid"]},
        *(
            {"op": "add", "path": f"/data/{key}", "value": value}
            for key, value in piece.data.items()
        ),
    ]


def segment_index(config_map: Mapping[str, Any]) -> int | None:
    labels = (config_map.get("metadata") or {}).get("labels") or {}
    value = labels.get(LABEL_LOG_SEGMENT)
    return int(value) if isinstance(value, str) and value.isdigit() else None


def is_run_segment(config_map: Mapping[str, Any], run: Mapping[str, Any]) -> bool:
    """Whether the segment belongs to this run (not to an earlier run of the same name)."""
    owners = (config_map.get("metadata") or {}).get("ownerReferences") or []
    uid = run["metadata"].get("uid")
    return segment_index(config_map) is not None and any(o.get("uid") == uid for o in owners)


def may_drop_segments(created: int) -> bool:
    """Whether creating segment `created` can leave a segment out of the tail."""
    return created >= HEAD_SEGMENTS + TAIL_SEGMENTS


def segments_to_drop(existing: Iterable[int], created: int) -> list[int]:
    """The segments to delete once segment `created` exists: those after the head that
    are no longer among the last `TAIL_SEGMENTS`."""
    return sorted(i for i in existing if HEAD_SEGMENTS <= i <= created - TAIL_SEGMENTS)


def assembled_log(segments: Iterable[Mapping[str, Any]], *, ended: bool) -> str | None:
    """The log the segments hold, in order, a line where bytes were not kept; None when
    there is no segment. `ended`: the attempt is over, so a log the runner did not finish
    (killed, or cut off from the API) says that it stops short."""
    chunks: list[tuple[int, str]] = []
    end: int | None = None
    found = False
    for segment in segments:
        found = True
        for key, value in ((segment.get("data") or {}) or {}).items():
            if key == END_KEY and str(value).isdigit():
                end = max(end or 0, int(value))
            elif key.isdigit() and isinstance(value, str):
                chunks.append((int(key), value))
    if not found:
        return None
    parts: list[str] = []
    at = 0
    for offset, text in sorted(chunks):
        data = text.encode()
        if offset + len(data) <= at:
            continue  # held twice: already there
        if offset > at:
            parts.append(_on_its_own_line(parts, left_out_line(offset - at)))
        elif offset < at:
            data = data[_char_start(data, at - offset) :]
        parts.append(data.decode(errors="replace"))
        at = offset + len(text.encode())
    if end is not None and end > at:
        parts.append(_on_its_own_line(parts, left_out_line(end - at)))
    elif end is None and ended:
        parts.append(_on_its_own_line(parts, UNFINISHED_LINE))
    return "".join(parts)


def _on_its_own_line(parts: list[str], line: str) -> str:
    return line if not parts or parts[-1].endswith("\n") else "\n" + line
