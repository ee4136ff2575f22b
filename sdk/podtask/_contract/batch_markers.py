"""A batch's commit marker: the one object whose single write makes a whole batch exist.

A batch trigger first creates a ConfigMap `podtask-batch-<batch id>` in state `open`, then
its TaskRuns, each labelled `podtask.dev/batch=<batch id>` and owned (ownerReference) by that
ConfigMap, then patches the ConfigMap to `committed`, together with the answer (the run of
each item). Until that patch the batch does not exist for users: the API hides its runs and
the operator holds them (no pod). An open batch that is never committed (its API died, its
client gave up) is deleted by the operator's housekeeping, and its runs go with it through
their ownerReference; a run created after that (by a request still in flight) names an
owner that no longer exists, so the garbage collector removes it too.

Used by the API (which writes markers) and the operator (which reads them); all pure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from podtask._contract.resources import format_timestamp, parse_timestamp
from podtask._contract.wire import GROUP

LABEL_BATCH = f"{GROUP}/batch"
MARKER_PREFIX = "podtask-batch-"
# The id of a batch with an idempotency key: `k` and this many hex digits of its digest.
_KEY_DIGITS = 16


class BatchState(StrEnum):
    OPEN = "open"
    COMMITTED = "committed"


def marker_name(batch_id: str) -> str:
    return MARKER_PREFIX + batch_id


def keyed_batch_id(idempotency_key: str, parent_run_id: str | None) -> str:
    """The id of the batch triggered with `idempotency_key` (by `parent_run_id`'s attempt,
    if a run triggers it: another run's same key is another batch)."""
    digest = hashlib.sha256(f"{parent_run_id or ''}\0{idempotency_key}".encode()).hexdigest()
    return "k" + digest[:_KEY_DIGITS]


def batch_run_name(stem: str, index: int) -> str:
    """The run of batch item `index`, for every try of the batch alike: a retry's create of
    it is an AlreadyExists, never a second run."""
    return f"run-{stem}-{index:03d}"


def request_digest(items: Sequence[Any]) -> str:
    """What a batch asked for, to tell a retry from another batch under the same key."""
    canonical = json.dumps(list(items), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class BatchRun:
    """One item's run in a committed batch's answer."""

    id: str
    is_cached: bool


@dataclass(frozen=True)
class BatchMarker:
    """A batch's marker as read: its state, and what the API needs to resume or answer."""

    batch_id: str
    state: BatchState
    stem: str
    items: int
    task_ids: tuple[str, ...]
    digest: str
    created_at: datetime | None
    runs: tuple[BatchRun, ...] = ()
    uid: str = ""
    resource_version: str = ""

    @property
    def name(self) -> str:
        return marker_name(self.batch_id)


def new_marker(
    batch_id: str, stem: str, items: int, task_ids: Sequence[str], digest: str, now: datetime
) -> dict[str, Any]:
    """The ConfigMap of a batch being created (state open)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": marker_name(batch_id), "labels": {LABEL_BATCH: batch_id}},
        "data": {
            "state": BatchState.OPEN.value,
            "stem": stem,
            "items": str(items),
            "taskIds": ",".join(sorted(set(task_ids))),
            "requestDigest": digest,
            "createdAt": format_timestamp(now),
        },
    }


def commit_patch(marker: BatchMarker, runs: Sequence[BatchRun]) -> list[dict[str, Any]]:
    """The JSON patch that commits an open batch, in one write: it fails (its `test`) unless
    the marker is still open, so that a batch withdrawn meanwhile is never committed."""
    answer = json.dumps([[run.id, run.is_cached] for run in runs], separators=(",", ":"))
    return [
        {"op": "test", "path": "/data/state", "value": BatchState.OPEN.value},
        {"op": "replace", "path": "/data/state", "value": BatchState.COMMITTED.value},
        {"op": "add", "path": "/data/runs", "value": answer},
    ]


def read_marker(config_map: Mapping[str, Any]) -> BatchMarker | None:
    """The marker a ConfigMap holds; None for one that is not a batch marker (or is broken)."""
    metadata = config_map.get("metadata") or {}
    data = config_map.get("data") or {}
    batch_id = (metadata.get("labels") or {}).get(LABEL_BATCH)
    try:
        state = BatchState(str(data.get("state")))
        runs = tuple(BatchRun(str(i), bool(c)) for i, c in json.loads(data.get("runs") or "[]"))
        items = int(data.get("items") or 0)
    except (ValueError, TypeError):
        return None
    if not batch_id or metadata.get("name") != marker_name(batch_id):
        return None
    return BatchMarker(
        batch_id=batch_id,
        state=state,
        stem=str(data.get("stem") or batch_id),
        items=items,
        task_ids=tuple(t for t in str(data.get("taskIds") or "").split(",") if t),
        digest=str(data.get("requestDigest") or ""),
        created_at=parse_timestamp(data.get("createdAt"))
        or parse_timestamp(metadata.get("creationTimestamp")),
        runs=runs,
        uid=str(metadata.get("uid") or ""),
        resource_version=str(metadata.get("resourceVersion") or ""),
    )


def owner_reference(marker: BatchMarker) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": marker.name, "uid": marker.uid}


@dataclass(frozen=True)
class BatchOwner:
    """The marker a run of a batch belongs to: its name and the uid it had."""

    batch_id: str
    uid: str

    @property
    def name(self) -> str:
        return marker_name(self.batch_id)


def batch_owner(run: Mapping[str, Any]) -> BatchOwner | None:
    """The batch `run` was created in; None for a run triggered on its own.

    A run labelled with a batch but not owned by its marker (never expected) belongs to no
    marker that can commit it: its owner uid is empty, which no marker has.
    """
    metadata = run.get("metadata") or {}
    batch_id = (metadata.get("labels") or {}).get(LABEL_BATCH)
    if not batch_id:
        return None
    for ref in metadata.get("ownerReferences") or []:
        if ref.get("kind") == "ConfigMap" and ref.get("name") == marker_name(batch_id):
            return BatchOwner(batch_id, str(ref.get("uid") or ""))
    return BatchOwner(batch_id, "")


def commits(marker: BatchMarker | None, owner: BatchOwner) -> bool:
    """Whether `marker` (as read; None: not found) commits the runs of `owner`: the same
    marker (not a later one of the same name) and committed."""
    return (
        marker is not None
        and bool(owner.uid)
        and marker.uid == owner.uid
        and marker.state is BatchState.COMMITTED
    )


class CommittedBatches:
    """The uids of markers known committed (a commit is never undone), up to a bound."""

    def __init__(self, bound: int = 10_000) -> None:
        self._bound = bound
        self._uids: dict[str, None] = {}

    def __contains__(self, uid: object) -> bool:
        return uid in self._uids

    def add(self, uid: str) -> None:
        self._uids.pop(uid, None)
        self._uids[uid] = None
        while len(self._uids) > self._bound:
            del self._uids[next(iter(self._uids))]
