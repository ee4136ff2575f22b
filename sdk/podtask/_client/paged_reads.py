"""The client's reads that go through every page of a list: `iter_runs` (runs, yielded as the
pages come) and `list_schedules` (every schedule), each blocking and awaited.

A part of `podtask.client.PodtaskClient` (which it is mixed into): each page is one call of
`podtask._client.api_calls`, sent by the client's transports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Unpack

from podtask._client import api_calls
from podtask._client.api_calls import MAX_PAGE_SIZE, RunFilters

if TYPE_CHECKING:
    from podtask._client.client_transport import AwaitingTransport, BlockingTransport


class PagedReads:
    """`PodtaskClient`'s reads of whole lists, page after page."""

    _transport: BlockingTransport
    _loop_transport: AwaitingTransport

    def iter_runs(
        self, *, page_size: int = MAX_PAGE_SIZE, **filters: Unpack[RunFilters]
    ) -> Iterator[dict[str, Any]]:
        """Every run that passes the filters (as `list_runs`), each once, page after page."""
        page = self._transport.send(api_calls.list_runs(limit=page_size, **filters))
        yield from page.runs
        while page.next_cursor is not None:
            call = api_calls.list_runs(limit=page_size, cursor=page.next_cursor, **filters)
            page = self._transport.send(call)
            yield from page.runs

    async def iter_runs_async(
        self, *, page_size: int = MAX_PAGE_SIZE, **filters: Unpack[RunFilters]
    ) -> AsyncIterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            call = api_calls.list_runs(limit=page_size, cursor=cursor, **filters)
            page = await self._loop_transport.send(call)
            for run in page.runs:
                yield run
            if (cursor := page.next_cursor) is None:
                return

    def list_schedules(
        self,
        task: str | None = None,
        type: str | None = None,
        active: bool | None = None,
        *,
        page_size: int = MAX_PAGE_SIZE,
    ) -> list[dict[str, Any]]:
        """Every schedule (of `task`, of `type` DECLARATIVE or IMPERATIVE, active or not),
        in id order, each as `get_schedule` shows it; read `page_size` at a time."""
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            call = api_calls.schedule_page(
                task=task, type=type, active=active, limit=page_size, cursor=cursor
            )
            page = self._transport.send(call)
            found += page.schedules
            if (cursor := page.next_cursor) is None:
                return found

    async def list_schedules_async(
        self,
        task: str | None = None,
        type: str | None = None,
        active: bool | None = None,
        *,
        page_size: int = MAX_PAGE_SIZE,
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            call = api_calls.schedule_page(
                task=task, type=type, active=active, limit=page_size, cursor=cursor
            )
            page = await self._loop_transport.send(call)
            found += page.schedules
            if (cursor := page.next_cursor) is None:
                return found
