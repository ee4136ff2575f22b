"""`TaskCatalog`: the namespace's Tasks as this API process's one watch of them sees them, so
that a trigger finds its Task without a round trip to the cluster.

A trigger reads its Task to freeze the task's configuration into the run. Reading it from
the cluster on every trigger was one Kubernetes request out of two per trigger; the catalog
serves it from memory instead, kept by a list and a watch in a thread of its own (the
Kubernetes client blocks), started by the first lookup.

What it may serve, and so how stale a trigger's Task may be:
- Only while the watch is live: from the end of a list (or a watch reopened from the last
  version it reached) until the watch fails. Before that, and while it reconnects, every
  lookup is a miss and the route reads the Task from the cluster, as it always did.
- A miss, a name the catalog does not hold, is read from the cluster too: a task registered a
  moment ago (its ADDED event not here yet) triggers.
- A Task changed or deleted by another process (`podtask dev`'s registration, another API
  replica's deployment, kubectl) is seen when the watch delivers the change, within
  milliseconds normally: a trigger in between gets the Task as it was an instant before, as
  if it had come an instant earlier (a trigger racing a registration could get either).
- A deployment through this process (`forget`) serves nothing from memory until a new list,
  taken after its writes, is in: a trigger after the deployment's answer gets the deployed
  Tasks (read your writes), and a removed task is a 404 at once.
- A cluster that refuses the watch (the API's role lacks `watch` on tasks, say) leaves the
  catalog empty: every trigger reads its Task from the cluster, as before.

The rules a watch line follows are `task_change`'s (pure).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from kubernetes.watch.watch import iter_resp_lines
from urllib3.exceptions import HTTPError

from podtask_api.cluster import ClusterError, KubernetesCluster, ListExpired
from podtask_api.run_events import WatchExpired, WatchFailed, watch_event

log = logging.getLogger("podtask_api")

# How long one watch request lasts before the cluster ends it (and it is opened again).
WATCH_SECONDS = 300
# Backoff between failed attempts to reach the cluster.
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 30.0


@dataclass(frozen=True)
class TaskChange:
    """One line of a watch of Tasks, read: the Task it names (None for a bookmark), its new
    state or None when it was deleted, and the version the watch reached."""

    name: str | None
    task: dict[str, Any] | None
    version: str


def task_change(line: str | bytes) -> TaskChange:
    """What one line of a watch of Tasks says. Raises as `run_events.watch_event`. Pure."""
    kind, obj = watch_event(line)
    metadata = obj.get("metadata") or {}
    version = str(metadata.get("resourceVersion") or "")
    if kind == "BOOKMARK":
        return TaskChange(None, None, version)
    name = str(metadata.get("name") or "")
    return TaskChange(name, None if kind == "DELETED" else obj, version)


def apply_change(tasks: MutableMapping[str, dict[str, Any]], change: TaskChange) -> None:
    """Make `tasks` (by name) hold what `change` says. Pure but for `tasks`."""
    if change.name is None:
        return
    if change.task is None:
        tasks.pop(change.name, None)
    else:
        tasks[change.name] = change.task


class TaskCatalog:
    """The Tasks of `cluster`'s namespace, as one watch keeps them; see the module's rules."""

    def __init__(self, cluster: KubernetesCluster, *, watch_seconds: int = WATCH_SECONDS) -> None:
        self._cluster = cluster
        self.watch_seconds = watch_seconds
        # Replaced whole by the watch thread, read by the event loop: no lock needed to read.
        self._tasks: dict[str, dict[str, Any]] = {}
        self._live = False
        # Bumped by `forget`: a list taken before the bump may not make the catalog live.
        self._generation = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._response: Any = None
        self._thread: threading.Thread | None = None

    @property
    def live(self) -> bool:
        """Whether lookups are answered from memory now."""
        return self._live

    def lookup(self, name: str) -> dict[str, Any] | None:
        """The Task `name` as the watch has it; None when the catalog cannot answer for it
        (not live yet, or no such Task in it): read it from the cluster then."""
        if not self._live:
            self._start()
            return None
        return self._tasks.get(name)

    def forget(self) -> None:
        """Serve nothing from memory until a list taken after now is in: this process has
        just written Tasks (a deployment)."""
        with self._lock:
            self._generation += 1
            self._live = False
            response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()  # the thread lists again at once

    def close(self) -> None:
        """Stop the watch (the API is stopping)."""
        self._stopping.set()
        self.forget()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stopping.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name="podtask-task-catalog", daemon=True
            )
        self._thread.start()

    def _run(self) -> None:
        backoff = FIRST_BACKOFF_SECONDS
        version: str | None = None
        generation = -1
        while not self._stopping.is_set():
            try:
                if version is None or generation != self._generation:
                    generation = self._generation
                    version = self._list()
                version = self._watch(version, generation)
                backoff = FIRST_BACKOFF_SECONDS
            except (WatchExpired, ListExpired):
                version = None  # the cluster no longer has that history: list again
            except (ClusterError, WatchFailed, HTTPError, OSError, ValueError) as exc:
                if generation != self._generation:
                    continue  # `forget` cut the watch short: list again at once
                backoff = self._wait_after(exc, backoff)
            except Exception as exc:  # a line it cannot read: triggers must not stop
                log.exception("the watch of tasks failed unexpectedly")
                backoff = self._wait_after(exc, backoff)
        self._live = False

    def _wait_after(self, trouble: Exception, backoff: float) -> float:
        self._live = False
        if self._stopping.is_set():
            return backoff
        log.warning(
            "the watch of tasks failed (%s); triggers read their task from the cluster "
            "meanwhile; trying again in %gs",
            trouble,
            backoff,
        )
        self._stopping.wait(backoff)
        return min(MAX_BACKOFF_SECONDS, backoff * 2)

    def _list(self) -> str:
        """Every Task, in place of what the catalog held; the list's version."""
        self._live = False
        items, version = self._cluster.list_tasks_at_version()
        tasks: dict[str, dict[str, Any]] = {}
        for task in items:
            name = (task.get("metadata") or {}).get("name")
            if name:
                tasks[str(name)] = task
        self._tasks = tasks
        return version

    def _watch(self, version: str, generation: int) -> str:
        """Follow one watch request to its end; the last version it reached."""
        # A `forget` during the list (or while the watch opens) ends the watch here rather than
        # at its first line, which could be a minute away (kube-apiserver's bookmarks): `_run`
        # then lists again at once.
        if generation != self._generation:
            return version
        response = self._cluster.watch_tasks(version, self.watch_seconds)
        with self._lock:
            # The watch goes on from `version`: what the catalog holds plus what it delivers
            # is the cluster's state, unless a deployment asked for a new list meanwhile.
            current = generation == self._generation and not self._stopping.is_set()
            self._response = response if current else None
            self._live = current
        if not current:
            response.close()  # unread: its connection may not be reused
            response.release_conn()
            return version
        try:
            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                change = task_change(line)
                apply_change(self._tasks, change)
                version = change.version or version
                if self._stopping.is_set() or generation != self._generation:
                    break
        finally:
            with self._lock:
                self._live = False
                self._response = None
            response.release_conn()
        return version
