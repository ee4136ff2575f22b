"""A task's error cut to fit its part of the TaskRun budget (`podtask.limits`).

The runner, the API (the runner's report) and the operator (each attempt's record, the
run's error) all store errors; each cuts them here, the same way: the type's head, the
message's head, the traceback's tail (where the cause is), within a number of bytes as
Kubernetes stores them. Text that is not Unicode (lone surrogates from a task's bytes) is
replaced, never refused: an error must always be recordable.
"""

from __future__ import annotations

from podtask.json_values import compact_json, stored_size
from podtask.limits import MAX_ERROR_BYTES, MAX_ERROR_MESSAGE_BYTES, MAX_ERROR_TYPE_CHARS
from podtask.resources import RunError

CUT = "…(truncated)…"
# What a RunError's keys, quotes and commas take around its three strings.
_ENVELOPE_BYTES = 64


def unicode_text(text: str) -> str:
    """`text` with any lone surrogate replaced by U+FFFD."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _size(text: str) -> int:
    return stored_size(compact_json(text))


def _fit(text: str, room: int) -> str:
    """The longest start of `text` within `room` stored bytes."""
    # A character takes 1 to 6 bytes stored (escapes): search the length.
    low, high = 0, min(len(text), room)
    while low < high:
        middle = (low + high + 1) // 2
        if _size(text[:middle]) <= room:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def head(text: str, limit: int) -> str:
    """The start of `text` within `limit` stored bytes, the cut marked."""
    if _size(text) <= limit:
        return text
    return _fit(text, max(0, limit - _size(CUT))) + CUT


def tail(text: str, limit: int) -> str:
    """The end of `text` within `limit` stored bytes, the cut marked."""
    if _size(text) <= limit:
        return text
    return CUT + _fit(text[::-1], max(0, limit - _size(CUT)))[::-1]


def bounded_error(error: RunError, limit: int = MAX_ERROR_BYTES) -> RunError:
    """`error` within `limit` bytes stored: the type, the message's head (up to
    `MAX_ERROR_MESSAGE_BYTES`, or less when the limit is small) and the stack's tail."""
    kind = unicode_text(error.type)[:MAX_ERROR_TYPE_CHARS]
    room = max(0, limit - _ENVELOPE_BYTES - _size(kind))
    message = head(unicode_text(error.message), min(MAX_ERROR_MESSAGE_BYTES, room // 2))
    stack = None
    if error.stack is not None:
        stack = tail(unicode_text(error.stack), max(0, room - _size(message)))
    return RunError(type=kind, message=message, stack=stack)
