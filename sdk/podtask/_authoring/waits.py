"""`wait`: pause a task for a while (`wait.for_`) or until a time (`wait.until`).

As Trigger.dev's `wait.for` and `wait.until`: inside a task the run gives its queue slot back
while it waits (its pod runs on, its status says `Waiting`), and takes one again before it
goes on; the time waited is not counted in its maxDuration (with `python -m podtask_runner
--local` too). Outside a task it simply sleeps. `for` is a Python keyword, hence `for_`.

    from podtask import task, wait

    @task(id="reminder")
    def reminder(payload, ctx):
        wait.for_(minutes=5)
        wait.until(datetime(2030, 1, 1, tzinfo=UTC))
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from datetime import UTC, datetime, timedelta

from podtask import client
from podtask._client.attempt_waits import released_slot, released_slot_async, unsent
from podtask._client.client_config import ClientNotConfiguredError


def _task_client() -> client.PodtaskClient | None:
    """The client of the task this code runs in, if it runs in one."""
    try:
        found = client.default_client()
    except ClientNotConfiguredError:
        return None
    return found if found.config.attempt_token is not None else None


def _duration(seconds: float, minutes: float, hours: float, days: float, weeks: float) -> float:
    total = timedelta(
        seconds=seconds, minutes=minutes, hours=hours, days=days, weeks=weeks
    ).total_seconds()
    if total < 0:
        raise ValueError(f"a wait cannot be negative (got {total:g} seconds)")
    return total


def _left(date: datetime, throw_if_in_the_past: bool) -> float:
    if not isinstance(date, datetime):
        raise TypeError(f"wait.until takes a datetime, not {type(date).__name__}")
    # A naive datetime is local time, as everywhere in podtask.
    left = (date.astimezone(UTC) - datetime.now(UTC)).total_seconds()
    if left <= 0 and throw_if_in_the_past:
        raise ValueError(f"wait.until: {date.isoformat()} is in the past")
    return left


def _released(until: datetime) -> AbstractContextManager[None]:
    found = _task_client()
    if found is None:
        return released_slot(None, unsent, until=until)
    return found.slot_released(until=until)


def _released_async(until: datetime) -> AbstractAsyncContextManager[None]:
    found = _task_client()
    if found is None:
        return released_slot_async(None, unsent, until=until)
    return found.slot_released_async(until=until)


class Wait:
    """`wait.for_(seconds=...)`, `wait.until(datetime)` and their `_async` twins."""

    def for_(
        self,
        *,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
        weeks: float = 0,
    ) -> None:
        """Wait this long (the units add up): `wait.for_(minutes=1, seconds=30)`."""
        total = _duration(seconds, minutes, hours, days, weeks)
        self.until(datetime.now(UTC) + timedelta(seconds=total))

    async def for_async(
        self,
        *,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
        weeks: float = 0,
    ) -> None:
        total = _duration(seconds, minutes, hours, days, weeks)
        await self.until_async(datetime.now(UTC) + timedelta(seconds=total))

    def until(self, date: datetime, *, throw_if_in_the_past: bool = False) -> None:
        """Wait until `date` (a naive datetime is local time); at once when it has passed,
        or raise `ValueError` then with `throw_if_in_the_past`."""
        left = _left(date, throw_if_in_the_past)
        if left <= 0:
            return
        ends = time.monotonic() + left
        with _released(date):
            time.sleep(max(0.0, ends - time.monotonic()))

    async def until_async(self, date: datetime, *, throw_if_in_the_past: bool = False) -> None:
        left = _left(date, throw_if_in_the_past)
        if left <= 0:
            return
        ends = time.monotonic() + left
        async with _released_async(date):
            await asyncio.sleep(max(0.0, ends - time.monotonic()))


wait = Wait()
