"""Runs named in bulk to reconcile (a committed batch's held runs, up to 1,000 a marker),
worked off by a few workers rather than all at once.

Each reconcile of a run named without its body reads the run: a task per run started them
all together, and a batch of 10,000 held 10,000 requests in flight (their tasks, aiohttp's
request objects, then the bodies read) while 32 connections served them: most of the
operator's peak memory in `bench/operator_scale.py` (issue 16, p5). A run named again before
its turn is worked once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

log = logging.getLogger(__name__)

# Reconciles at once: as many as an admission's starts in flight.
BACKLOG_WORKERS = 16


class RunBacklog:
    """Names of runs to hand to `work`, oldest first, to at most `workers` at once."""

    def __init__(
        self,
        work: Callable[[str], Awaitable[None]],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        workers: int = BACKLOG_WORKERS,
    ) -> None:
        self._work = work
        self._spawn = spawn
        self._limit = workers
        self._names: dict[str, None] = {}  # a set that keeps its order
        self._workers = 0
        self._drained = asyncio.Event()
        self._drained.set()

    def add(self, names: Iterable[str]) -> None:
        for name in names:
            self._names[name] = None
        if not self._names:
            return
        self._drained.clear()
        while self._workers < min(self._limit, len(self._names)):
            self._workers += 1
            self._spawn(self._work_off())

    async def drained(self) -> None:
        """Return once every run added has been worked."""
        await self._drained.wait()

    async def _work_off(self) -> None:
        try:
            while self._names:
                name = next(iter(self._names))
                del self._names[name]
                try:
                    await self._work(name)
                except Exception:
                    # As the task of its own it had: logged, and its next event or wake-up
                    # takes it up again.
                    log.exception("run %s: reconcile failed", name)
        finally:
            self._workers -= 1
            if not self._workers and not self._names:
                self._drained.set()
