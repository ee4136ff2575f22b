"""The runs' event streams, without I/O: what a change of a TaskRun is, which subscriber wants
it, how each subscriber's backlog is kept, and how an event is written as server-sent events.

`run_feed` does the watching: it reads the lines of one Kubernetes watch of TaskRuns, turns
each into a `RunChange` here (`watch_change`), and hands it to every `Subscription` whose
`Interest` wants it. `routes/realtime` writes what each stream sends (`RunFollow` for the
stream of one run, `run_frame` for the list's).

Resource versions: Kubernetes asks clients to treat them as opaque, but both the real
control plane (etcd revisions) and the embedded cluster number them with one increasing
integer. `is_newer` compares them as such when both are integers, to put a run's states in
order (a state read with GET against one the watch delivers late) and to replay what a
reconnecting client missed; when either is not an integer it says "newer", so nothing is
held back on a cluster that numbers them otherwise.
"""

from __future__ import annotations

import json
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from podtask._authoring.run_results import FINAL_STATUSES
from podtask_api.run_listing import RunFilters, run_status

# A comment line every so often: proxies and browsers keep a quiet stream open, and a client
# whose stream stays silent much longer knows its connection is dead.
KEEPALIVE_SECONDS = 15.0
KEEPALIVE = b": keepalive\n\n"
# Changes waiting for one slow subscriber, at most; past that it is dropped (its stream
# ends, and its client reconnects with Last-Event-ID).
MAX_PENDING = 1000
# What the feed keeps of recent changes, for clients that reconnect with Last-Event-ID.
REPLAY_BYTES = 8 * 1024 * 1024
REPLAY_CHANGES = 10_000

ChangeKind = Literal["run", "deleted"]


class WatchExpired(Exception):
    """The cluster no longer has the history from the version the watch asked for (410 Gone):
    list again."""


class WatchFailed(Exception):
    """The watch reported an error other than 410; watch again from the last version."""


def _version_number(version: str | None) -> int | None:
    if version is None or not version.isdigit():
        return None
    return int(version)


def is_newer(version: str | None, than: str | None) -> bool:
    """Whether `version` comes after `than` (True unless both are integers and it does not)."""
    candidate, reference = _version_number(version), _version_number(than)
    if candidate is None or reference is None:
        return True
    return candidate > reference


@dataclass(frozen=True)
class RunChange:
    """One change of a TaskRun: its new state (`run`), or its removal (`deleted`, with its
    last state). `previous_status` is its status before, when the feed saw it."""

    kind: ChangeKind
    name: str
    run: Mapping[str, Any]
    version: str
    previous_status: str | None = None
    size: int = 0  # bytes of the watch line: what keeping it costs

    @property
    def status(self) -> str:
        return run_status(self.run)


@dataclass(frozen=True)
class WatchLine:
    """One line of a watch, read: a change (None for a bookmark), and the version reached."""

    change: RunChange | None
    version: str


def _version_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def watch_event(line: str | bytes) -> tuple[str, dict[str, Any]]:
    """The type (ADDED, MODIFIED, DELETED, BOOKMARK) and object of one line of a Kubernetes
    watch. Raises `WatchExpired` on a 410 error event, `WatchFailed` on other errors and on
    what is no watch event."""
    event = json.loads(line)
    if not isinstance(event, dict):
        raise WatchFailed("a watch line is not an object")
    kind, obj = event.get("type"), event.get("object") or {}
    if kind == "ERROR":
        code, message = obj.get("code"), obj.get("message") or "watch error"
        if code == 410:
            raise WatchExpired(message)
        raise WatchFailed(f"{code}: {message}")
    if kind not in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
        raise WatchFailed(f"unknown watch event type {kind!r}")
    return kind, obj


def watch_change(line: str | bytes, statuses: MutableMapping[str, str]) -> WatchLine:
    """The change one line of a watch of TaskRuns says; `statuses` (each run's last status)
    is kept up to date. Raises as `watch_event`."""
    kind, obj = watch_event(line)
    version = _version_of(obj)
    if kind == "BOOKMARK":
        return WatchLine(None, version)
    name = str((obj.get("metadata") or {}).get("name") or "")
    previous = statuses.get(name)
    if kind == "DELETED":
        statuses.pop(name, None)
    else:
        statuses[name] = run_status(obj)
    change_kind: ChangeKind = "deleted" if kind == "DELETED" else "run"
    return WatchLine(RunChange(change_kind, name, obj, version, previous, len(line)), version)


def relist_changes(
    items: Iterable[Mapping[str, Any]],
    since: str | None,
    followed: Iterable[str],
    statuses: MutableMapping[str, str],
) -> list[RunChange]:
    """What a list taken after a 410 says changed since version `since`: each run written
    later, and, for the runs a stream follows (`followed`), their removal when they are gone.
    `statuses` is set to what the list holds."""
    changes: list[RunChange] = []
    present: set[str] = set()
    for obj in items:
        name = str((obj.get("metadata") or {}).get("name") or "")
        present.add(name)
        previous, status = statuses.get(name), run_status(obj)
        statuses[name] = status
        version = _version_of(obj)
        if since is None or is_newer(version, since):
            size = len(json.dumps(obj))
            changes.append(RunChange("run", name, obj, version, previous, size))
    for name in sorted(set(followed) - present):
        gone = {"metadata": {"name": name, "resourceVersion": since or ""}}
        changes.append(RunChange("deleted", name, gone, since or "", statuses.get(name)))
    for name in set(statuses) - present:
        del statuses[name]
    return changes


# -- who wants what -----------------------------------------------------------------------


@dataclass(frozen=True)
class OneRun:
    """The interest of the stream of one run."""

    name: str

    def wants(self, change: RunChange) -> bool:
        return change.name == self.name


@dataclass(frozen=True)
class RunList:
    """The interest of the stream of a filtered list of runs. A run that leaves the filters'
    statuses is sent once more, with its new status, so that a list can drop it."""

    filters: RunFilters
    matches_none: bool = False

    def wants(self, change: RunChange) -> bool:
        if self.matches_none:
            return False
        if self.filters.matches(change.run):
            return True
        statuses = self.filters.statuses
        if not statuses or change.previous_status not in statuses:
            return False
        return replace(self.filters, statuses=frozenset()).matches(change.run)


Interest = OneRun | RunList


# -- each subscriber's backlog --------------------------------------------------------------


class PendingChanges:
    """The changes a subscriber has not taken yet, in the order they happened.

    A change of a run whose previous pending change has the same status replaces it (a run's
    metadata may change every second; a slow reader gets the latest), so every status a run
    goes through is kept. Bounded: `add` says False once more than `limit` are waiting.
    """

    def __init__(self, limit: int = MAX_PENDING) -> None:
        self._limit = limit
        self._changes: OrderedDict[int, RunChange] = OrderedDict()
        self._latest: dict[str, int] = {}
        self._count = 0

    def __len__(self) -> int:
        return len(self._changes)

    def add(self, change: RunChange) -> bool:
        """Keep `change`; False when the subscriber is too far behind to be kept."""
        earlier = self._latest.get(change.name)
        if earlier is not None:
            pending = self._changes[earlier]
            if change.kind == pending.kind == "run" and change.status == pending.status:
                del self._changes[earlier]
        self._count += 1
        self._changes[self._count] = change
        self._latest[change.name] = self._count
        return len(self._changes) <= self._limit

    def take(self) -> RunChange | None:
        """The oldest change waiting, or None."""
        if not self._changes:
            return None
        key, change = self._changes.popitem(last=False)
        if self._latest.get(change.name) == key:
            del self._latest[change.name]
        return change

    def take_before(self, version: str) -> list[RunChange]:
        """The changes waiting from before `version`, oldest first (those of a resumed stream
        that came before the state it reads)."""
        taken = []
        while self._changes:
            first = next(iter(self._changes.values()))
            if _version_number(first.version) is None or not is_newer(version, first.version):
                break
            change = self.take()
            assert change is not None
            taken.append(change)
        return taken


class ReplayWindow:
    """The latest changes, bounded by count and bytes, for clients that come back with the
    id of the last event they got (`Last-Event-ID`)."""

    def __init__(
        self, origin: str, max_bytes: int = REPLAY_BYTES, max_changes: int = REPLAY_CHANGES
    ) -> None:
        self._changes: deque[RunChange] = deque()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._max_changes = max_changes
        # Every change after this version is kept.
        self.floor = origin

    def add(self, change: RunChange) -> None:
        if _version_number(change.version) is None:
            return
        self._changes.append(change)
        self._bytes += change.size
        while self._changes and (
            self._bytes > self._max_bytes or len(self._changes) > self._max_changes
        ):
            dropped = self._changes.popleft()
            self._bytes -= dropped.size
            self.floor = dropped.version

    def since(self, version: str) -> list[RunChange] | None:
        """The changes after `version`, oldest first; None when some of them are no longer
        kept (or versions are not numbers)."""
        if _version_number(version) is None or _version_number(self.floor) is None:
            return None
        if is_newer(self.floor, version):
            return None
        return [change for change in self._changes if is_newer(change.version, version)]


# -- server-sent events ---------------------------------------------------------------------


def sse_frame(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One event: its name, its `id` when it has one, and its data as JSON on one line."""
    lines = [f"event: {event}"]
    if event_id:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    return ("\n".join(lines) + "\n\n").encode()


END_FRAME = sse_frame("end", {})

RunJson = Callable[[Mapping[str, Any]], dict[str, Any]]
"""The run as `GET /api/v1/runs/{id}` shows it, from its TaskRun."""


def run_frame(change: RunChange, shown: RunJson) -> bytes:
    """The event of a change in a stream of runs."""
    if change.kind == "deleted":
        return sse_frame("deleted", {"id": change.name}, change.version)
    return sse_frame("run", shown(change.run), change.version)


class RunFollow:
    """What the stream of one run sends: its states in order, each once, then `end` after a
    final status (or after it is deleted). `resumed_from`: the client's Last-Event-ID."""

    def __init__(self, shown: RunJson, resumed_from: str | None = None) -> None:
        self._shown = shown
        self._last_version = resumed_from
        self._last_json: str | None = None
        self.ended = False

    def current(self, run: Mapping[str, Any]) -> list[bytes]:
        """The run's current state, read when the stream starts."""
        version = _version_of(run)
        if self._last_version is not None and version == self._last_version:
            # The client had this state when its connection dropped: only the end, if any.
            return self._end() if run_status(run) in FINAL_STATUSES else []
        return self._state(run, version)

    def change(self, change: RunChange) -> list[bytes]:
        """What a change of the run sends: nothing when it is not newer than what was sent,
        or shows the same."""
        if self.ended:
            return []
        if change.kind == "deleted":
            return [run_frame(change, self._shown), *self._end()]
        if not is_newer(change.version, self._last_version):
            return []
        return self._state(change.run, change.version)

    def _state(self, run: Mapping[str, Any], version: str) -> list[bytes]:
        shown = self._shown(run)
        text = json.dumps(shown, sort_keys=True)
        self._last_version = version
        if text == self._last_json:
            return []
        self._last_json = text
        frames = [sse_frame("run", shown, version)]
        if shown.get("status") in FINAL_STATUSES:
            frames += self._end()
        return frames

    def _end(self) -> list[bytes]:
        self.ended = True
        return [END_FRAME]
