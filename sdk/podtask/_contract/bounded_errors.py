"""A task's error cut to fit its part of the TaskRun budget (`podtask._contract.limits`).

The runner, the API (the runner's report) and the operator (each attempt's record, the
run's error) all store errors; each cuts them here, the same way: the type's head, the
message's head, the traceback's tail (where the cause is), within a number of bytes as
Kubernetes stores them. Lone surrogates (from a task's bytes) are mended, never refused:
an error must always be recordable.
"""

from __future__ import annotations

from podtask._contract.bounded_text import head, tail, text_size, unicode_text
from podtask._contract.limits import MAX_ERROR_BYTES, MAX_ERROR_MESSAGE_BYTES, MAX_ERROR_TYPE_CHARS
from podtask._contract.resources import RunError

# What a RunError's keys, quotes and commas take around its three strings.
_ENVELOPE_BYTES = 64


def bounded_error(error: RunError, limit: int = MAX_ERROR_BYTES) -> RunError:
    """`error` within `limit` bytes stored: the type, the message's head (up to
    `MAX_ERROR_MESSAGE_BYTES`, or less when the limit is small) and the stack's tail."""
    kind = unicode_text(error.type)[:MAX_ERROR_TYPE_CHARS]
    room = max(0, limit - _ENVELOPE_BYTES - text_size(kind))
    message = head(unicode_text(error.message), min(MAX_ERROR_MESSAGE_BYTES, room // 2))
    stack = None
    if error.stack is not None:
        stack = tail(unicode_text(error.stack), max(0, room - text_size(message)))
    return RunError(type=kind, message=message, stack=stack)
