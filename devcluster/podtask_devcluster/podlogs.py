"""Container log files: where the kubelet writes them and how the log endpoint reads them
(whole, tail, or followed until the container ends)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

FOLLOW_POLL_SECONDS = 0.1
CHUNK_BYTES = 64 * 1024


def log_path(log_dir: Path, namespace: str, pod: str, container: str) -> Path:
    return log_dir / f"{namespace}_{pod}_{container}.log"


def tail_lines(data: bytes, lines: int) -> bytes:
    if lines <= 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


def read_log(path: Path, tail: int | None, limit_bytes: int | None = None) -> bytes:
    data = path.read_bytes()
    if tail is not None:
        data = tail_lines(data, tail)
    if limit_bytes is not None and limit_bytes >= 0:
        data = data[:limit_bytes]
    return data


async def follow_log(
    path: Path,
    tail: int | None,
    still_writing: Callable[[], bool],
    stopping: asyncio.Event,
) -> AsyncIterator[bytes]:
    """The log so far, then whatever is appended, until the container has ended and the file
    is drained, or the server stops."""
    with path.open("rb") as handle:
        if tail is not None:
            yield tail_lines(handle.read(), tail)
        while True:
            chunk = handle.read(CHUNK_BYTES)
            if chunk:
                yield chunk
                continue
            if not still_writing() or stopping.is_set():
                rest = handle.read()
                if rest:
                    yield rest
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), FOLLOW_POLL_SECONDS)
