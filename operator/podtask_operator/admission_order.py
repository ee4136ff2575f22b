"""The order a bucket's pods are created in: the order its runs were admitted.

An admission pass starts a bucket's runs side by side (each start is a few API calls, and
one after another they cap a queue at a few dozen starts a second); only the creation of
their pods keeps the line's order, so that within a priority runs start in the order they
were triggered. Each start holds a `Turn`: before it creates its pod it waits (`wait`) until
every start admitted before it created its pod or gave up, and it ends its turn (`end`)
once it created its pod or will not. A turn that ends early still lets the next one go only
after the turns before it ended: the chain is never overtaken.
"""

from __future__ import annotations

import asyncio


class Turn:
    """One start's place in its bucket's order of pod creations."""

    def __init__(self, before: asyncio.Future[None] | None) -> None:
        self._before = before
        # Resolved once this turn and every turn before it ended.
        self.passed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ended = False

    async def wait(self) -> None:
        """Until every turn before this one ended."""
        if self._before is not None and not self._before.done():
            # Shielded: a start cancelled while it waits must not cancel the chain.
            await asyncio.shield(self._before)

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

    def __init__(self) -> None:
        self._last: asyncio.Future[None] | None = None

    def next(self) -> Turn:
        turn = Turn(self._last)
        self._last = turn.passed
        return turn

    @property
    def idle(self) -> bool:
        """No turn handed out is still to end: the line may be forgotten."""
        return self._last is None or self._last.done()
