"""The scheduler: every queue's waiting line and active pods, and which run goes next.

It holds state and answers; it calls nobody. The reconciler runs the admission passes: under
a bucket's lock (`admission_lock`, so passes for one bucket run one at a time) it takes the
next run while the bucket has a free slot (`next_admission`: the run holds a slot from then
on), starts it alongside the others it took, and says how each start went (`admitted`,
`put_back`). Active pods are counted from the cluster (pod watch events)
plus the pods this operator created and has not seen yet, so a lagging watch cannot let a
queue exceed its limit. A run whose attempt waits gives its slot back while its pod runs on
(`release`), and is queued again to take one before it goes on (`enqueue(resuming=True)`,
ahead of the runs that have not started); admitting it (`admitted`) counts its pod again.
The queues whose counts changed are collected for the reconciler to publish
(`take_changed_queues`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from podtask._contract.resources import TaskRunSpec
from podtask._contract.wire import LABEL_CONCURRENCY_KEY, LABEL_QUEUE
from podtask_operator.admission import QueueControls, effective_limit, free_slots, waiting_message
from podtask_operator.attempts import pod_is_finished
from podtask_operator.queues import Bucket, BucketKey, LinePlace, bucket_of

log = logging.getLogger(__name__)

RETRY_ADMISSION_SECONDS = 5.0
# A bucket whose pods the cluster refuses for now (a quota, throttling) tries again after a
# backoff that doubles up to the maximum; a slot freeing up in it tries again at once.
DEFERRED_FIRST_SECONDS = 1.0
DEFERRED_MAX_SECONDS = 30.0


class AdmissionDeferred(Exception):
    """The cluster refused a run's pod for now (an exceeded ResourceQuota, 429): the run stays
    first in its line, and the bucket tries again after a backoff."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


# Pods seen ending, remembered so that a creation answered after the pod already
# ended (a very fast task) does not count it as active again.
_ENDED_MEMORY = 20_000


def _pod_bucket(pod: Mapping[str, Any]) -> BucketKey | None:
    labels = pod.get("metadata", {}).get("labels") or {}
    queue = labels.get(LABEL_QUEUE)
    if queue is None:
        return None
    return (queue, labels.get(LABEL_CONCURRENCY_KEY, ""))


class Scheduler:
    def __init__(self, default_limit: int) -> None:
        self._default_limit = default_limit
        self._buckets: dict[BucketKey, Bucket] = {}
        self._run_bucket: dict[str, BucketKey] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._controls: dict[str, QueueControls] = {}
        self._declared: dict[str, int | None] = {}
        self._locks: dict[BucketKey, asyncio.Lock] = {}
        # Why a bucket waits, its backoff, and the admission pass that set it.
        self._deferred: dict[BucketKey, tuple[AdmissionDeferred, float, int]] = {}
        self._changed: set[str] = set()

    # --- state ---------------------------------------------------------------------------

    def _bucket(self, key: BucketKey, queue: str) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(key=key, queue=queue)
        return bucket

    def buckets(self) -> list[BucketKey]:
        return list(self._buckets)

    def queues(self) -> set[str]:
        """The queues it knows: of its buckets, or of a TaskQueue's controls."""
        return {key[0] for key in self._buckets} | set(self._controls)

    def take_changed_queues(self) -> set[str]:
        """The queues whose counts changed since the last call."""
        changed, self._changed = self._changed, set()
        return changed

    def enqueue(
        self, name: str, spec: TaskRunSpec, created: str, *, resuming: bool = False
    ) -> BucketKey:
        """Put a run in its line (a no-op when it is there already); `resuming`: a run whose
        wait is over, which goes before the runs that have not started."""
        key = bucket_of(spec)
        self._declared[key[0]] = spec.queue.concurrency_limit
        bucket = self._bucket(key, key[0])
        if name not in bucket.waiting:
            bucket.waiting.add(LinePlace.of(name, spec.priority, created, resuming=resuming))
            self._run_bucket[name] = key
            self._changed.add(key[0])
        return key

    def withdraw(self, name: str) -> BucketKey | None:
        key = self._run_bucket.pop(name, None)
        if key is not None and self._buckets[key].waiting.remove(name):
            self._changed.add(key[0])
        return key

    def is_waiting(self, name: str) -> bool:
        return name in self._run_bucket

    def release(self, spec: TaskRunSpec, pod: str) -> BucketKey | None:
        """The run of `pod` waits: its pod holds no slot from now on. The bucket when a slot
        freed up (None when it was released already)."""
        key = bucket_of(spec)
        bucket = self._bucket(key, key[0])
        if pod in bucket.released or pod in self._ended:
            return None
        bucket.released.add(pod)
        self._changed.add(key[0])
        return key

    def observe_pod(self, pod: Mapping[str, Any], *, deleted: bool = False) -> BucketKey | None:
        """Count a pod in or out of its bucket; the bucket when a slot may have freed up."""
        name = pod["metadata"]["name"]
        key = _pod_bucket(pod)
        if key is None:
            return None
        bucket = self._bucket(key, key[0])
        if deleted or pod_is_finished(pod):
            self._ended[name] = None
            if len(self._ended) > _ENDED_MEMORY:
                self._ended.popitem(last=False)
            bucket.released.discard(name)
            if name in bucket.active:
                bucket.active.discard(name)
                self._changed.add(key[0])
            return key
        if name not in self._ended and name not in bucket.active:
            bucket.active.add(name)
            self._changed.add(key[0])
        return None

    def set_controls(self, queue: str, controls: QueueControls | None) -> list[BucketKey]:
        """Apply a TaskQueue's live limit and pause; the buckets that may admit now."""
        if controls is None:
            self._controls.pop(queue, None)
        else:
            self._controls[queue] = controls
        return [key for key in self._buckets if key[0] == queue]

    def limit(self, queue: str) -> int:
        return effective_limit(
            self._controls.get(queue), self._declared.get(queue), self._default_limit
        )

    def paused(self, queue: str) -> bool:
        controls = self._controls.get(queue)
        return controls is not None and controls.paused

    def counts(self, queue: str) -> tuple[int, int]:
        """(running, queued) over every concurrency key of a queue."""
        running = queued = 0
        for key, bucket in self._buckets.items():
            if key[0] == queue:
                running += bucket.occupied
                queued += len(bucket.waiting)
        return running, queued

    def why_waiting(self, name: str) -> tuple[str, str] | None:
        key = self._run_bucket.get(name)
        if key is None:
            return None
        bucket = self._buckets[key]
        deferred = self._deferred.get(key)
        if deferred is not None:
            position = bucket.waiting.position(name)
            return deferred[0].reason, f"{deferred[0].message}; position {position}"
        return waiting_message(
            key[0],
            key[1],
            bucket.occupied,
            self.limit(key[0]),
            self.paused(key[0]),
            bucket.waiting.position(name),
        )

    # --- admission -----------------------------------------------------------------------

    def admission_lock(self, key: BucketKey) -> asyncio.Lock:
        """Held for an admission pass of the bucket: one pass at a time."""
        return self._locks.setdefault(key, asyncio.Lock())

    def next_admission(self, key: BucketKey) -> LinePlace | None:
        """Take the best waiting run of the bucket if it has a free slot (hold its lock); it
        holds a slot until its start is told (`admitted`, `put_back`)."""
        bucket = self._buckets.get(key)
        if bucket is None or not bucket.waiting:
            return None
        if not free_slots(bucket.occupied, self.limit(bucket.queue), self.paused(bucket.queue)):
            return None
        place = bucket.waiting.pop_first()
        self._run_bucket.pop(place.name, None)
        bucket.starting.add(place.name)
        return place

    def admitted(self, key: BucketKey, name: str, pod: str | None) -> bool:
        """The run `name` taken for admission started in `pod`, or resumed in it (None: it
        may no longer start). Whether its slot is held now: not when it did not start, or
        its pod ended already."""
        bucket = self._buckets[key]
        bucket.starting.discard(name)
        self._changed.add(bucket.queue)
        if pod is None:
            return False
        self._deferred.pop(key, None)
        bucket.released.discard(pod)
        if pod in self._ended:
            return False
        bucket.active.add(pod)
        return True

    def put_back(
        self,
        key: BucketKey,
        place: LinePlace,
        deferred: AdmissionDeferred | None = None,
        admission_pass: int = 0,
    ) -> float:
        """A run taken for admission could not start: it keeps its place in the line. The
        delay before the bucket tries again: a backoff that doubles from one admission pass
        to the next while the cluster refuses its pods for now (`deferred`; the starts of
        one pass refused together count once), else `RETRY_ADMISSION_SECONDS`."""
        bucket = self._buckets[key]
        bucket.starting.discard(place.name)
        if place.name not in self._run_bucket:
            bucket.waiting.add(place)
            self._run_bucket[place.name] = key
        self._changed.add(key[0])
        if deferred is None:
            return RETRY_ADMISSION_SECONDS
        return self._defer(key, deferred, admission_pass)

    def _defer(self, key: BucketKey, why: AdmissionDeferred, admission_pass: int) -> float:
        """Remember why the bucket waits; the backoff before its next try."""
        previous = self._deferred.get(key)
        if previous is None:
            delay = DEFERRED_FIRST_SECONDS
        elif previous[2] == admission_pass:
            delay = previous[1]
        else:
            delay = min(previous[1] * 2, DEFERRED_MAX_SECONDS)
        self._deferred[key] = (why, delay, admission_pass)
        return delay
