"""Object storage: an in-memory mirror of every object, written through to SQLite, with the
global resourceVersion counter, a bounded per-resource history of watch events and the
fan-out of new events to watchers and in-process subscribers.

Everything here runs on the cluster's event loop thread; nothing is locked. Objects handed out
are the stored dicts themselves: callers copy before they change anything.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podtask_devcluster import errors
from podtask_devcluster.private_files import private_file, restrict_if_present
from podtask_devcluster.schema import stored_numbers

JsonObject = dict[str, Any]

HISTORY_LENGTH = 5000
# etcd's default --max-request-bytes (1.5 MiB) bounds one write: the stored object plus the
# key and the transaction around it. What kube-apiserver answers past it is `too_large`.
ETCD_MAX_REQUEST_BYTES = 1572864
ETCD_REQUEST_OVERHEAD_BYTES = 256


def too_large() -> errors.StatusError:
    return errors.StatusError(500, "", "etcdserver: request is too large")


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED or DELETED
    resource: str  # storage key, "<group>/<plural>"
    object: JsonObject
    previous: JsonObject | None
    resource_version: int


@dataclass(eq=False)
class Watcher:
    """One open watch: the events of one resource, delivered in order; None means 'stop'."""

    resource: str
    queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)


def storage_key(group: str, plural: str) -> str:
    return f"{group}/{plural}"


def _namespace(obj: JsonObject) -> str:
    return str(obj.get("metadata", {}).get("namespace") or "")


def _name(obj: JsonObject) -> str:
    return str(obj["metadata"]["name"])


class ObjectStore:
    """All objects by resource, namespace and name; cluster-scoped objects use namespace ''."""

    def __init__(self, database: Path) -> None:
        database.parent.mkdir(parents=True, exist_ok=True)
        # SQLite gives its -wal and -shm files the database file's mode; older ones are fixed.
        private_file(database)
        for journal in ("-wal", "-shm", "-journal"):
            restrict_if_present(database.with_name(database.name + journal))
        self._db = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS objects (resource TEXT NOT NULL, namespace TEXT NOT NULL,"
            " name TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (resource, namespace, name))"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)"
        )
        self._objects: dict[str, dict[str, dict[str, JsonObject]]] = {}
        self._by_uid: dict[str, tuple[str, str, str]] = {}
        self._dependents: dict[str, set[tuple[str, str, str]]] = {}
        self._history: dict[str, collections.deque[WatchEvent]] = {}
        self._history_floor: dict[str, int] = {}
        self._watchers: dict[str, set[Watcher]] = {}
        self._subscribers: list[Callable[[WatchEvent], None]] = []
        row = self._db.execute("SELECT value FROM counters WHERE name='rv'").fetchone()
        self._resource_version = int(row[0]) if row else 0
        # History starts empty at every start: a watch from an older version gets 410 Gone.
        self._start_version = self._resource_version
        for resource, body in self._db.execute("SELECT resource, body FROM objects"):
            obj = json.loads(body)
            self._index(resource, obj)

    # ------------------------------------------------------------ reading

    @property
    def resource_version(self) -> int:
        return self._resource_version

    def get(self, resource: str, namespace: str, name: str) -> JsonObject | None:
        return self._objects.get(resource, {}).get(namespace, {}).get(name)

    def objects_of(self, resource: str, namespace: str | None = None) -> list[JsonObject]:
        """Objects of one resource (in one namespace, or all), ordered by namespace and name."""
        by_namespace = self._objects.get(resource, {})
        if namespace is not None:
            objects = by_namespace.get(namespace, {})
            return [objects[name] for name in sorted(objects)]
        return [
            by_namespace[ns][name]
            for ns in sorted(by_namespace)
            for name in sorted(by_namespace[ns])
        ]

    def count(self, resource: str, namespace: str | None = None) -> int:
        by_namespace = self._objects.get(resource, {})
        if namespace is not None:
            return len(by_namespace.get(namespace, {}))
        return sum(len(objects) for objects in by_namespace.values())

    def resources(self) -> list[str]:
        return [resource for resource, objects in self._objects.items() if objects]

    def namespaced_objects(self, namespace: str) -> Iterator[tuple[str, JsonObject]]:
        for resource, by_namespace in list(self._objects.items()):
            for obj in list(by_namespace.get(namespace, {}).values()):
                yield resource, obj

    def by_uid(self, uid: str) -> tuple[str, JsonObject] | None:
        key = self._by_uid.get(uid)
        if key is None:
            return None
        obj = self.get(*key)
        return (key[0], obj) if obj is not None else None

    def dependents(self, owner_uid: str) -> list[tuple[str, JsonObject]]:
        found = []
        for resource, namespace, name in list(self._dependents.get(owner_uid, ())):
            obj = self.get(resource, namespace, name)
            if obj is not None:
                found.append((resource, obj))
        return found

    def owner_uids(self) -> list[str]:
        return list(self._dependents)

    def uid_exists(self, uid: str) -> bool:
        return uid in self._by_uid

    # ------------------------------------------------------------ writing

    def _next_version(self) -> int:
        self._resource_version += 1
        return self._resource_version

    def _persist(self, resource: str, obj: JsonObject | None, key: tuple[str, str]) -> None:
        with self._db:
            if obj is None:
                self._db.execute(
                    "DELETE FROM objects WHERE resource=? AND namespace=? AND name=?",
                    (resource, *key),
                )
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO objects (resource, namespace, name, body) "
                    "VALUES (?, ?, ?, ?)",
                    (resource, *key, json.dumps(obj, separators=(",", ":"))),
                )
            self._db.execute(
                "INSERT OR REPLACE INTO counters (name, value) VALUES ('rv', ?)",
                (self._resource_version,),
            )

    def _index(self, resource: str, obj: JsonObject) -> None:
        namespace, name = _namespace(obj), _name(obj)
        self._objects.setdefault(resource, {}).setdefault(namespace, {})[name] = obj
        meta = obj["metadata"]
        if uid := meta.get("uid"):
            self._by_uid[uid] = (resource, namespace, name)
        for reference in meta.get("ownerReferences") or []:
            if owner := reference.get("uid"):
                self._dependents.setdefault(owner, set()).add((resource, namespace, name))

    def _unindex(self, resource: str, obj: JsonObject) -> None:
        namespace, name = _namespace(obj), _name(obj)
        by_namespace = self._objects.get(resource, {})
        objects = by_namespace.get(namespace, {})
        objects.pop(name, None)
        if not objects:
            by_namespace.pop(namespace, None)
        meta = obj["metadata"]
        if (uid := meta.get("uid")) and self._by_uid.get(uid) == (resource, namespace, name):
            del self._by_uid[uid]
        for reference in meta.get("ownerReferences") or []:
            owner = reference.get("uid")
            dependents = self._dependents.get(owner) if owner else None
            if dependents is not None:
                dependents.discard((resource, namespace, name))
                if not dependents:
                    del self._dependents[owner]

    def put(self, resource: str, obj: JsonObject) -> JsonObject:
        """Create or replace; stamps the next resourceVersion and publishes ADDED/MODIFIED."""
        normalized = stored_numbers(obj)
        obj.clear()
        obj.update(normalized)
        namespace, name = _namespace(obj), _name(obj)
        encoded = len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())
        key_length = len(f"/registry/{resource}/{namespace}/{name}".encode())
        if encoded + key_length + ETCD_REQUEST_OVERHEAD_BYTES > ETCD_MAX_REQUEST_BYTES:
            raise too_large()
        previous = self.get(resource, namespace, name)
        version = self._next_version()
        obj["metadata"]["resourceVersion"] = str(version)
        if previous is not None:
            self._unindex(resource, previous)
        self._index(resource, obj)
        self._persist(resource, obj, (namespace, name))
        event_type = "ADDED" if previous is None else "MODIFIED"
        self._publish(WatchEvent(event_type, resource, obj, previous, version))
        return obj

    def remove(self, resource: str, namespace: str, name: str) -> JsonObject | None:
        """Delete; the DELETED event carries the object stamped with a new resourceVersion."""
        previous = self.get(resource, namespace, name)
        if previous is None:
            return None
        version = self._next_version()
        final = dict(previous)
        final["metadata"] = dict(previous["metadata"], resourceVersion=str(version))
        self._unindex(resource, previous)
        self._persist(resource, None, (namespace, name))
        self._publish(WatchEvent("DELETED", resource, final, previous, version))
        return final

    # ------------------------------------------------------------ watching

    def history_floor(self, resource: str) -> int:
        """Every event of `resource` newer than this version is still in the history."""
        return self._history_floor.get(resource, self._start_version)

    def begin_history(self, resource: str) -> None:
        """A resource served from now on (a new CRD): like kube-apiserver's watch cache, which
        starts when the resource does, a watch from before now is told 410 Gone."""
        if resource not in self._history:
            self._history_floor[resource] = self._resource_version

    def events_since(self, resource: str, version: int) -> list[WatchEvent]:
        return [e for e in self._history.get(resource, ()) if e.resource_version > version]

    def add_watcher(self, resource: str) -> Watcher:
        watcher = Watcher(resource)
        self._watchers.setdefault(resource, set()).add(watcher)
        return watcher

    def remove_watcher(self, watcher: Watcher) -> None:
        self._watchers.get(watcher.resource, set()).discard(watcher)

    def close_watchers(self, resource: str | None = None) -> None:
        """End open watches (all of them, or those of one resource)."""
        groups: Iterable[set[Watcher]] = (
            self._watchers.values() if resource is None else [self._watchers.get(resource, set())]
        )
        for watchers in groups:
            for watcher in list(watchers):
                watcher.queue.put_nowait(None)

    def subscribe(self, callback: Callable[[WatchEvent], None]) -> None:
        """Call `callback` synchronously with every event, after it is stored."""
        self._subscribers.append(callback)

    def _publish(self, event: WatchEvent) -> None:
        history = self._history.get(event.resource)
        if history is None:
            history = self._history[event.resource] = collections.deque(maxlen=HISTORY_LENGTH)
        if len(history) == history.maxlen:
            self._history_floor[event.resource] = history[0].resource_version
        history.append(event)
        for watcher in list(self._watchers.get(event.resource, ())):
            watcher.queue.put_nowait(event)
        for callback in list(self._subscribers):
            callback(event)

    def close(self) -> None:
        self.close_watchers()
        self._db.close()
