"""Following a `RunStream` (`podtask._client.event_streams`) over a transport's streamed text,
blocking or awaited: each run it yields, reconnecting after a dropped connection with the id
of the last event received, until the stream of one run ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from contextlib import aclosing, closing
from typing import Any

from podtask._client.api_calls import ApiCall
from podtask._client.client_config import PodtaskApiError, PodtaskConnectionError
from podtask._client.event_streams import RunStream

StreamText = Callable[[ApiCall[Any]], Generator[str]]
StreamTextAsync = Callable[[ApiCall[Any]], AsyncGenerator[str]]


def follow(stream_text: StreamText, stream: RunStream) -> Iterator[dict[str, Any]]:
    """The runs `stream` yields, read through `stream_text` (a blocking transport's)."""
    while True:
        trouble: PodtaskApiError | PodtaskConnectionError | None = None
        try:
            with closing(stream_text(stream.call())) as texts:
                for text in texts:
                    yield from stream.read(text)
                    if stream.finished:
                        return
        except (PodtaskApiError, PodtaskConnectionError) as exc:
            trouble = exc
        time.sleep(stream.reconnect_after(trouble))


async def follow_async(
    stream_text: StreamTextAsync, stream: RunStream
) -> AsyncIterator[dict[str, Any]]:
    """The runs `stream` yields, read through `stream_text` (an awaiting transport's)."""
    while True:
        trouble: PodtaskApiError | PodtaskConnectionError | None = None
        try:
            async with aclosing(stream_text(stream.call())) as texts:
                async for text in texts:
                    for run in stream.read(text):
                        yield run
                    if stream.finished:
                        return
        except (PodtaskApiError, PodtaskConnectionError) as exc:
            trouble = exc
        await asyncio.sleep(stream.reconnect_after(trouble))
