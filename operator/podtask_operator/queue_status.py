"""The running and queued counts on each TaskQueue's status (`kubectl get taskqueues`).

Written soon after they change, once for a burst of changes, and only when they differ from
what this operator wrote last: its own write comes back as a watch event of the queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from podtask_operator.cluster import ClusterApi
from podtask_operator.scheduler import Scheduler

log = logging.getLogger(__name__)

QUEUE_STATUS_DELAY_SECONDS = 0.5


class QueueStatusWriter:
    def __init__(self, cluster: ClusterApi, scheduler: Scheduler) -> None:
        self._cluster = cluster
        self._scheduler = scheduler
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._written: dict[str, tuple[int, int]] = {}
        self._background: set[asyncio.Task[Any]] = set()

    def changed(self, queues: Iterable[str]) -> None:
        """Write these queues' counts soon (as counted then): one write for a burst."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for queue in queues:
            if queue not in self._pending:
                self._pending[queue] = loop.call_later(
                    QUEUE_STATUS_DELAY_SECONDS, self._write_soon, queue
                )

    def _write_soon(self, queue: str) -> None:
        self._pending.pop(queue, None)
        running, queued = self._scheduler.counts(queue)
        task = asyncio.get_running_loop().create_task(self._write(queue, running, queued))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write(self, queue: str, running: int, queued: int) -> None:
        if self._written.get(queue) == (running, queued):
            return
        try:
            await self._cluster.patch_queue_status(queue, {"running": running, "queued": queued})
        except Exception:
            log.warning("could not write the status of queue %s", queue, exc_info=True)
            return
        self._written[queue] = (running, queued)
