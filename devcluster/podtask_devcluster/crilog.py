"""Container logs in the CRI format a kubelet reads (`<RFC3339Nano> stdout F|P <text>`, one
record a line, `P` for a partial line): written from a container's output pipe (or by the
container runtime itself: podman's `k8s-file` log driver writes the same format), and read back
with the options of `kubectl logs` (tailLines, sinceSeconds/sinceTime, timestamps,
limitBytes, follow)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

READ_BYTES = 64 * 1024
# As containerd: a line is held until its newline, unless it grows past this.
MAX_PARTIAL_BYTES = 16 * 1024
FOLLOW_POLL_SECONDS = 0.1


def timestamp(moment: dt.datetime | None = None) -> str:
    """RFC3339 with nine fraction digits, as the kubelet prints it."""
    moment = moment or dt.datetime.now(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def parse_timestamp(text: str) -> dt.datetime:
    """RFC3339 (nanoseconds allowed), `Z` or a numeric offset such as conmon's `+00:00`."""
    offset = dt.timedelta()
    if text.endswith("Z"):
        text = text[:-1]
    elif len(text) > 6 and text[-6] in "+-" and text[-3] == ":":
        sign = 1 if text[-6] == "+" else -1
        offset = sign * dt.timedelta(hours=int(text[-5:-3]), minutes=int(text[-2:]))
        text = text[:-6]
    whole, _, fraction = text.partition(".")
    moment = dt.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    if fraction:
        moment += dt.timedelta(microseconds=int(fraction[:6].ljust(6, "0")))
    return moment - offset


def _in_utc(text: str) -> str:
    """A record's time as the kubelet prints it (UTC, `Z`), whoever wrote the record: the
    container runtime (conmon) writes its local offset."""
    if text.endswith("Z"):
        return text
    try:
        moment = parse_timestamp(text)
    except ValueError:
        return text
    nanos = text.rpartition(".")[2][:9] if "." in text else ""
    digits = "".join(c for c in nanos if c.isdigit()).ljust(9, "0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + digits + "Z"


@dataclass(frozen=True)
class Record:
    time: str
    stream: str
    partial: bool
    text: bytes

    def render(self, timestamps: bool) -> bytes:
        body = self.text if self.partial else self.text + b"\n"
        return (self.time.encode() + b" " + body) if timestamps else body


def encode(text: bytes, moment: str) -> bytes:
    """The records for one chunk of output: complete lines `F`, a trailing partial line `P`."""
    out: list[bytes] = []
    lines = text.split(b"\n")
    for line in lines[:-1]:
        out.append(f"{moment} stdout F ".encode() + line + b"\n")
    if lines[-1]:
        out.append(f"{moment} stdout P ".encode() + lines[-1] + b"\n")
    return b"".join(out)


def decode(line: bytes) -> Record | None:
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    text = parts[3] if len(parts) == 4 else b""
    return Record(_in_utc(parts[0].decode()), parts[1].decode(), parts[2] == b"P", text)


class CriLogWriter:
    def __init__(self, path: Path) -> None:
        self._path = path

    async def copy(self, stream: asyncio.StreamReader) -> None:
        """Until the container's output closes: whole lines as they arrive (a line longer
        than MAX_PARTIAL_BYTES in partial records), the last unfinished one at the end."""
        held = b""
        with self._path.open("ab", buffering=0) as log:
            while chunk := await stream.read(READ_BYTES):
                held += chunk
                end = held.rfind(b"\n") + 1
                if len(held) - end > MAX_PARTIAL_BYTES:
                    end = len(held)
                if end:
                    log.write(encode(held[:end], timestamp()))
                    held = held[end:]
            if held:
                log.write(encode(held, timestamp()))


@dataclass(frozen=True)
class LogOptions:
    tail_lines: int | None = None
    since: dt.datetime | None = None
    timestamps: bool = False
    limit_bytes: int | None = None


def _select(records: list[Record], options: LogOptions) -> list[Record]:
    if options.since is not None:
        since = options.since
        records = [r for r in records if parse_timestamp(r.time) >= since]
    if options.tail_lines is not None:
        if options.tail_lines <= 0:
            return []
        # A line ends at a full record; count lines back from the end.
        ends = [i for i, r in enumerate(records) if not r.partial]
        if records and records[-1].partial:
            ends.append(len(records) - 1)
        if len(ends) > options.tail_lines:
            records = records[ends[-options.tail_lines - 1] + 1 :]
    return records


def _records(data: bytes) -> tuple[list[Record], int]:
    """The complete records in `data`, and how many bytes they take."""
    end = data.rfind(b"\n") + 1
    found = [r for line in data[:end].splitlines() if (r := decode(line)) is not None]
    return found, end


def read_log(path: Path, options: LogOptions) -> bytes:
    records, _ = _records(path.read_bytes())
    out = b"".join(r.render(options.timestamps) for r in _select(records, options))
    if options.limit_bytes is not None and options.limit_bytes >= 0:
        out = out[: options.limit_bytes]
    return out


async def follow_log(
    path: Path,
    options: LogOptions,
    still_writing: Callable[[], bool],
    stopping: asyncio.Event,
) -> AsyncIterator[bytes]:
    """What `read_log` gives, then each record as it is written, until the container has
    ended and the file is drained (or limitBytes is reached, or the server stops)."""
    left = options.limit_bytes if options.limit_bytes is not None else -1

    def limited(chunk: bytes) -> bytes:
        nonlocal left
        if left < 0:
            return chunk
        chunk, left = chunk[:left], max(0, left - len(chunk))
        return chunk

    with path.open("rb") as handle:
        records, used = _records(handle.read())
        handle.seek(used)
        first = b"".join(r.render(options.timestamps) for r in _select(records, options))
        if first := limited(first):
            yield first
        pending = b""
        while left != 0:
            pending += handle.read(READ_BYTES)
            records, used = _records(pending)
            pending = pending[used:]
            if options.since is not None:
                records = _select(records, LogOptions(since=options.since))
            if records:
                chunk = limited(b"".join(r.render(options.timestamps) for r in records))
                if chunk:
                    yield chunk
                continue
            if not still_writing() or stopping.is_set():
                pending += handle.read()
                records, _ = _records(pending)
                if rest := limited(b"".join(r.render(options.timestamps) for r in records)):
                    yield rest
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), FOLLOW_POLL_SECONDS)
