"""OwnerReference garbage collection: when an object is removed, the objects it owns go too
(background propagation); an owner deleted with the `orphan` finalizer has its dependents'
references removed, one with `foregroundDeletion` waits for its dependents to be deleted;
orphans left by a stop or a race are swept up periodically."""

from __future__ import annotations

import asyncio
import contextlib

from podtask_devcluster.registry import Registry
from podtask_devcluster.request_options import FOREGROUND, ORPHAN, DeleteOptions
from podtask_devcluster.store import WatchEvent

SWEEP_INTERVAL_SECONDS = 10.0


class GarbageCollector:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        registry.store.subscribe(self._on_event)

    def _on_event(self, event: WatchEvent) -> None:
        meta = event.object["metadata"]
        if event.type == "DELETED":
            for reference in meta.get("ownerReferences") or []:
                self._later_finish(reference.get("uid", ""))
        elif meta.get("deletionTimestamp") and {ORPHAN, FOREGROUND} & set(
            meta.get("finalizers") or []
        ):
            self._later_finish(meta.get("uid", ""))
            return
        if event.type != "DELETED":
            return
        uid = event.object["metadata"].get("uid")
        if uid and uid not in self._pending and self._registry.store.dependents(uid):
            self._pending.add(uid)
            # Later, not inside the write that removed the owner: that is what "background" means.
            asyncio.get_running_loop().call_soon(self._collect, uid)

    def _later_finish(self, owner_uid: str) -> None:
        if owner_uid:
            asyncio.get_running_loop().call_soon(self._finish_deletion, owner_uid)

    def _finish_deletion(self, owner_uid: str) -> None:
        """Orphan or foreground deletion of an owner the API server left to the collector."""
        store = self._registry.store
        found = store.by_uid(owner_uid)
        if found is None:
            return
        key, owner = found
        finalizers = owner["metadata"].get("finalizers") or []
        if not owner["metadata"].get("deletionTimestamp"):
            return
        if ORPHAN in finalizers:
            self._registry.orphan_dependents(owner_uid)
            self._registry.drop_finalizer(key, owner, ORPHAN)
        elif FOREGROUND in finalizers:
            dependents = store.dependents(owner_uid)
            for dependent_key, dependent in dependents:
                if not dependent["metadata"].get("deletionTimestamp"):
                    self._registry.delete_stored(
                        dependent_key, dependent, DeleteOptions(propagation_policy="Foreground")
                    )
            if not store.dependents(owner_uid):
                self._registry.drop_finalizer(key, owner, FOREGROUND)

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
