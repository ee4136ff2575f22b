"""OwnerReference garbage collection: when an object is removed, the objects it owns go too
(background propagation), and orphans left by a stop or a race are swept up periodically."""

from __future__ import annotations

import asyncio
import contextlib

from podtask_devcluster.registry import DeleteOptions, Registry
from podtask_devcluster.store import WatchEvent

SWEEP_INTERVAL_SECONDS = 10.0


class GarbageCollector:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        registry.store.subscribe(self._on_event)

    def _on_event(self, event: WatchEvent) -> None:
        if event.type != "DELETED":
            return
        uid = event.object["metadata"].get("uid")
        if uid and uid not in self._pending and self._registry.store.dependents(uid):
            self._pending.add(uid)
            # Later, not inside the write that removed the owner: that is what "background" means.
            asyncio.get_running_loop().call_soon(self._collect, uid)

    def _collect(self, owner_uid: str) -> None:
        self._pending.discard(owner_uid)
        store = self._registry.store
        if store.uid_exists(owner_uid):
            return
        for key, dependent in store.dependents(owner_uid):
            references = dependent["metadata"].get("ownerReferences") or []
            if any(
                ref.get("uid") != owner_uid and store.uid_exists(ref.get("uid", ""))
                for ref in references
            ):
                continue
            self._registry.delete_stored(key, dependent, DeleteOptions())

    def sweep(self) -> None:
        """Collect the dependents of every owner that no longer exists."""
        store = self._registry.store
        for owner_uid in store.owner_uids():
            if not store.uid_exists(owner_uid):
                self._collect(owner_uid)

    def start(self) -> None:
        self.sweep()
        self._task = asyncio.get_running_loop().create_task(self._sweep_periodically())

    async def _sweep_periodically(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)
            self.sweep()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
