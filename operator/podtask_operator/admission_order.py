"""The order a bucket's pods are created in: the order its runs were admitted.

An admission pass starts a bucket's runs side by side (each start is a few API calls, and
one after another they cap a queue at a few dozen starts a second); only the creation of
their pods keeps the line's order, so that within a priority runs start in the order they
were triggered. Each start holds a `Turn`: before it creates its pod it waits (`wait`) until
every start admitted before it created its pod or gave up, and it ends its turn (`end`)
once it created its pod or will not. A turn that ends early still lets the next one go only
after the turns before it ended: the chain is never overtaken.

A start checks that its bucket still admits it (`admits`: its queue was not paused since)
before it begins and again when its turn comes, and is `Withdrawn` if not: a pause stops the
starts under way but the pod creations already sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Withdrawn(Exception):
    """The bucket no longer admits this start (its queue was paused): the run goes back."""


class Turn:
    """One start's place in its bucket's order of pod creations."""

    def __init__(self, before: asyncio.Future[None] | None, admits: Callable[[], bool]) -> None:
        self._before = before
        self._admits = admits
        # Resolved once this turn and every turn before it ended.
        self.passed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ended = False

    def check(self) -> None:
        """Raise `Withdrawn` when the bucket no longer admits this start."""
        if not self._admits():
            raise Withdrawn

    async def wait(self) -> None:
        """Until every turn before this one ended; `Withdrawn` if the bucket no longer
        admits this start then."""
        if self._before is not None and not self._before.done():
            # Shielded: a start cancelled while it waits must not cancel the chain.
            await asyncio.shield(self._before)
        self.check()

    def end(self) -> None:
        """This start created its pod, or will not: the next may go (idempotent)."""
        if self._ended:
            return
        self._ended = True
        if self._before is None or self._before.done():
            self._pass()
        else:
            self._before.add_done_callback(lambda _: self._pass())

    def _pass(self) -> None:
        if not self.passed.done():
            self.passed.set_result(None)


class TurnLine:
    """The turns of one bucket, in the order they were handed out."""

    def __init__(self, admits: Callable[[], bool] = lambda: True) -> None:
        self._admits = admits
        self._last: asyncio.Future[None] | None = None

    def next(self) -> Turn:
        turn = Turn(self._last, self._admits)
        self._last = turn.passed
        return turn

    @property
    def idle(self) -> bool:
        """No turn handed out is still to end."""
        return self._last is None or self._last.done()

    async def drained(self) -> None:
        """Until every turn handed out so far ended."""
        if self._last is not None and not self._last.done():
            await asyncio.shield(self._last)
