"""Text cut to a number of bytes as Kubernetes stores it
(`podtask._contract.json_values.stored_size`), the cut marked: the head of a message, the tail
of a traceback. Text that is not Unicode (lone surrogates) is mended, never refused: what is
cut here must always be storable.
"""

from __future__ import annotations

import re

from podtask._contract.json_values import compact_json, stored_size

_SURROGATE = re.compile("[\ud800-\udfff]")

CUT = "…(truncated)…"


def unicode_text(text: str) -> str:
    """`text` with any lone surrogate replaced by U+FFFD."""
    if text.isascii():
        return text
    # A Python string holds a character beyond U+FFFF as one code point: every surrogate
    # in it is a lone one.
    return _SURROGATE.sub("\ufffd", text)


def text_size(text: str) -> int:
    """The bytes `text` takes stored as a JSON string, its quotes included."""
    return stored_size(compact_json(text))


def _fit(text: str, room: int) -> str:
    """The longest start of `text` within `room` stored bytes."""
    # A character takes 1 to 6 bytes stored (escapes): search the length.
    low, high = 0, min(len(text), room)
    while low < high:
        middle = (low + high + 1) // 2
        if text_size(text[:middle]) <= room:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def head(text: str, limit: int) -> str:
    """The start of `text` (mended) within `limit` stored bytes, the cut marked."""
    text = unicode_text(text)
    if text_size(text) <= limit:
        return text
    return _fit(text, max(0, limit - text_size(CUT))) + CUT


def tail(text: str, limit: int) -> str:
    """The end of `text` (mended) within `limit` stored bytes, the cut marked."""
    text = unicode_text(text)
    if text_size(text) <= limit:
        return text
    return CUT + _fit(text[::-1], max(0, limit - text_size(CUT)))[::-1]
