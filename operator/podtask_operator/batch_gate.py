"""The batch gate: a run of a batch is admitted only once its batch is committed.

A batch trigger creates its runs before it commits them with one write to the batch's
marker (`podtask._contract.batch_markers`); until then the runs do not exist for users and must not
start. The reconciler asks `admits` before it queues a run: a run of a batch not known
committed is held (not queued, no status written) until the marker's watch event says the
batch is committed (`marker_changed` then names the held runs to reconcile again). A run
whose batch is never committed stays held until housekeeping deletes its marker and the
garbage collector the run.

Committed batches are remembered (bounded) so that a batch's runs read its marker once; a
batch known open is not read again: its commit arrives as a watch event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from podtask._contract.batch_markers import (
    BatchOwner,
    BatchState,
    CommittedBatches,
    batch_owner,
    commits,
    read_marker,
)

ReadMarker = Callable[[str], Awaitable[dict[str, Any] | None]]


def needs_commit(run: Mapping[str, Any]) -> BatchOwner | None:
    """The batch whose commit `run` waits for; None when it may go on (not in a batch, or
    already under way: a run the operator ever wrote a status to was admitted, so its batch
    was committed)."""
    owner = batch_owner(run)
    if owner is None or (run.get("status") or {}).get("phase"):
        return None
    return owner


class BatchGate:
    def __init__(self, read: ReadMarker) -> None:
        self._read = read
        self._committed = CommittedBatches()
        # Marker uid → the runs held for it (only batches known open).
        self._held: dict[str, set[str]] = {}

    def is_held(self, name: str) -> bool:
        return any(name in names for names in self._held.values())

    async def admits(self, run: Mapping[str, Any]) -> bool:
        """Whether `run` may be reconciled on; if not, it is held until its batch commits."""
        owner = needs_commit(run)
        if owner is None or owner.uid in self._committed:
            return True
        if owner.uid not in self._held:
            found = await self._read(owner.name)
            if commits(read_marker(found) if found is not None else None, owner):
                self._committed.add(owner.uid)
        # Checked after the read: the commit's event may have come while it was under way.
        if owner.uid in self._committed:
            return True
        self._held.setdefault(owner.uid, set()).add(str(run["metadata"]["name"]))
        return False

    def marker_changed(self, body: Mapping[str, Any], *, deleted: bool = False) -> list[str]:
        """The held runs to reconcile now that this marker changed (committed: all of them;
        deleted: none, they go with it)."""
        marker = read_marker(body)
        if marker is None or not marker.uid:
            return []
        if deleted:
            self._held.pop(marker.uid, None)
            return []
        if marker.state is not BatchState.COMMITTED:
            return []
        self._committed.add(marker.uid)
        return sorted(self._held.pop(marker.uid, ()))

    def forget(self, name: str) -> None:
        for uid, names in list(self._held.items()):
            names.discard(name)
            if not names:
                del self._held[uid]
