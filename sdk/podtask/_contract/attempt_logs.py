"""An attempt's log beyond its pod: what the runner sends, and how much of it is kept.

A pod's log goes with the pod (a cancel or maxDuration deletes it, housekeeping deletes
finished ones, anyone may delete one), so the runner also sends everything its container
writes (the task's stdout and stderr, its children's, its own lines) to the API, about
once a second (`FLUSH_SECONDS`): a SIGKILL (an OOM kill) loses the last second at most.
Each `LogChunk` is text at a byte offset of the attempt's whole output (UTF-8, bytes that
are not UTF-8 replaced by U+FFFD): offsets make a chunk sent twice harmless and a stretch
that was never sent visible. The API keeps the log for the run's retention
(`podtask_api.stored_logs`).

A long log keeps its head and its tail, as `kubectl logs` readers look at both ends: the
first `HEAD_BYTES` and the last `TAIL_BYTES` or a little more, with a line in between
saying how much was left out. Both ends are whole segments of `SEGMENT_BYTES`, the unit in
which the API stores the log. Pure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from podtask._contract.limits import KIB

# The unit of storage: a Kubernetes object holds one segment of the log.
SEGMENT_BYTES = 64 * KIB
# Segments kept at the start and at the end of a long log (1 MiB is the most a ConfigMap
# holds; each is one object, so the total stays well under what a namespace expects).
HEAD_SEGMENTS = 4
TAIL_SEGMENTS = 8
HEAD_BYTES = HEAD_SEGMENTS * SEGMENT_BYTES
TAIL_BYTES = TAIL_SEGMENTS * SEGMENT_BYTES

# How often the runner sends what its container wrote since the last time.
FLUSH_SECONDS = 1.0
# The most text one chunk carries (UTF-8 bytes): one request, one segment at most.
MAX_CHUNK_BYTES = SEGMENT_BYTES
# Offsets beyond any log (1 TB), in 12 digits.
MAX_LOG_OFFSET = 10**12 - 1


@dataclass(frozen=True)
class LogChunk:
    """`POST .../log`: `text` written at byte `offset` of the attempt's output; `final` on
    the runner's last chunk (the log is whole up to `offset` + its length).

    A dataclass, not a pydantic model: the runner makes chunks from its start, before its
    task runs, and a task pod need not import pydantic for them. The API validates the
    body with pydantic all the same (FastAPI takes a dataclass as a body), the checks of
    `__post_init__` included; unknown keys are ignored, as on the other wire models."""

    offset: int
    text: str = ""
    final: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.offset <= MAX_LOG_OFFSET:
            raise ValueError(f"offset must be from 0 to {MAX_LOG_OFFSET}, got {self.offset}")
        if len(self.text.encode(errors="surrogatepass")) > MAX_CHUNK_BYTES:
            raise ValueError(f"a log chunk carries at most {MAX_CHUNK_BYTES} bytes of text")

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def end(self) -> int:
        """The offset just past this chunk."""
        return self.offset + len(self.text.encode(errors="surrogatepass"))


def left_out_line(size: int) -> str:
    """The line that stands where `size` bytes of a log were not kept."""
    return f"[podtask: {size} bytes of this log were not kept here]\n"


UNFINISHED_LINE = (
    "[podtask: the log ends here: the runner sent nothing after this line (it was killed, "
    "or could not reach the API)]\n"
)
