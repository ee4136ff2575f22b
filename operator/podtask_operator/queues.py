"""Waiting lines and active pods: the in-memory state of one queue (and concurrency key).

Pure data structures, no I/O. A waiting line is ordered by priority (higher
first), then creation time, then name, and every operation on it is O(log n), so
admitting the next run costs the same with ten or ten thousand runs waiting. Runs that
resume after a wait go before every run that has not started (as Trigger.dev continues a
run before it dequeues new ones): they have work under way, and a parent that waited on
its children must not wait again behind runs triggered after them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sortedcontainers import SortedList

from podtask._contract.resources import TaskRunSpec
from podtask_operator.pods import label_value

# (queue, concurrency key): each key of a queue has the queue's limit to itself.
BucketKey = tuple[str, str]


def bucket_of(spec: TaskRunSpec) -> BucketKey:
    """The bucket of a run, named exactly as its pods' labels name it."""
    key = "" if spec.concurrency_key is None else label_value(spec.concurrency_key)
    return (label_value(spec.queue.name), key)


@dataclass(frozen=True, order=True)
class LinePlace:
    """Where a run stands: sorted by this tuple, smallest first (resuming runs first)."""

    starting: bool
    negative_priority: int
    created: str
    name: str

    @classmethod
    def of(cls, name: str, priority: int, created: str, *, resuming: bool = False) -> LinePlace:
        return cls(not resuming, -priority, created, name)

    @property
    def resuming(self) -> bool:
        return not self.starting


class WaitingLine:
    """Runs waiting for a slot, best first."""

    def __init__(self) -> None:
        self._places: SortedList[LinePlace] = SortedList()
        self._by_name: dict[str, LinePlace] = {}

    def __len__(self) -> int:
        return len(self._places)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def add(self, place: LinePlace) -> None:
        if place.name in self._by_name:
            return
        self._by_name[place.name] = place
        self._places.add(place)

    def remove(self, name: str) -> bool:
        place = self._by_name.pop(name, None)
        if place is None:
            return False
        self._places.remove(place)
        return True

    def pop_first(self) -> LinePlace:
        place = self._places.pop(0)
        del self._by_name[place.name]
        return place

    def position(self, name: str) -> int:
        """1-based place in line."""
        return self._places.index(self._by_name[name]) + 1


@dataclass
class Bucket:
    """One queue (and concurrency key): who waits, which runs are being started (`starting`:
    admitted, their pod not created yet), which of its pods are active, and which of those
    belong to runs that wait (`released`: they hold no slot)."""

    key: BucketKey
    queue: str
    waiting: WaitingLine = field(default_factory=WaitingLine)
    starting: set[str] = field(default_factory=set)
    active: set[str] = field(default_factory=set)
    released: set[str] = field(default_factory=set)

    @property
    def occupied(self) -> int:
        """The slots held: by the runs being started, and by its active pods but those of
        waiting runs."""
        # `&` walks the smaller set: few runs wait at once, many pods may be active.
        return len(self.starting) + len(self.active) - len(self.released & self.active)
