"""What the operator writes on each TaskQueue's status (`kubectl get taskqueues`): the running
and queued counts, the limit in force (`limitInForce`: the queue's own, else the one its
runs declare, else the operator's default), so that a queue without a limit shows the number
that holds it rather than nothing, and the generation of the spec it acts on
(`observedGeneration`, as Kubernetes controllers say it).

Written soon after they change, once for a burst of changes, and only when they differ from
what the TaskQueue holds: what this operator wrote last, or what a watch event of the queue
showed since (its own write comes back that way; a queue made again starts empty).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from podtask_operator.cluster import ClusterApi
from podtask_operator.scheduler import Scheduler

log = logging.getLogger(__name__)

QUEUE_STATUS_DELAY_SECONDS = 0.5


def queue_status(
    scheduler: Scheduler, queue: str, observed_generation: int | None = None
) -> dict[str, int]:
    """The status the operator gives `queue` now; `observed_generation`: the generation of
    its spec the operator acts on, when it is known."""
    running, queued = scheduler.counts(queue)
    status = {"running": running, "queued": queued, "limitInForce": scheduler.limit(queue)}
    if observed_generation is not None:
        status["observedGeneration"] = observed_generation
    return status


class QueueStatusWriter:
    def __init__(
        self,
        cluster: ClusterApi,
        scheduler: Scheduler,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        """`spawn` runs a write in the background, among the work its owner ends when it
        closes."""
        self._cluster = cluster
        self._scheduler = scheduler
        self._spawn = spawn
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._written: dict[str, dict[str, Any]] = {}
        self._acted_on: dict[str, int] = {}

    def observed(self, queue: str, status: Mapping[str, Any] | None) -> None:
        """What a TaskQueue's status holds, as a watch event or a list showed it (None: the
        queue is gone)."""
        if status is None:
            self._written.pop(queue, None)
            self._acted_on.pop(queue, None)
        else:
            self._written[queue] = dict(status)

    def acted_on(self, queue: str, generation: int | None) -> None:
        """The operator acts on this generation of the queue's spec now: written with the
        queue's next status (`changed`)."""
        if generation is not None:
            self._acted_on[queue] = generation

    def changed(self, queues: Iterable[str]) -> None:
        """Write these queues' status soon (as it stands then): one write for a burst."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        for queue in queues:
            if queue not in self._pending:
                self._pending[queue] = loop.call_later(
                    QUEUE_STATUS_DELAY_SECONDS, self._write_soon, queue
                )

    def stop(self) -> None:
        """Start no write more: the pending ones dropped (those under way are the spawner's to
        end). The next leader writes every queue's status from its own counts."""
        for timer in self._pending.values():
            timer.cancel()
        self._pending.clear()

    def _write_soon(self, queue: str) -> None:
        self._pending.pop(queue, None)
        status = queue_status(self._scheduler, queue, self._acted_on.get(queue))
        self._spawn(self._write(queue, status))

    async def _write(self, queue: str, status: dict[str, int]) -> None:
        written = self._written.get(queue) or {}
        if all(written.get(field) == value for field, value in status.items()):
            return
        try:
            exists = await self._cluster.patch_queue_status(queue, status)
        except Exception:
            log.warning("could not write the status of queue %s", queue, exc_info=True)
            return
        if exists:
            self._written[queue] = {**written, **status}
