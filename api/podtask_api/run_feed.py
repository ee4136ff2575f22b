"""`RunFeed`: the one watch of TaskRuns of an API process, fanned out to every event stream.

The watch starts with the first subscriber and stops a while after the last one leaves. It
runs in a thread of its own (the Kubernetes client blocks): it lists once for the version to
start from, watches from there, goes on from the last version it saw whenever the cluster
ends or drops the watch, and after a 410 Gone (the cluster no longer has that history) lists
every run again and passes on those that changed meanwhile (`run_events.relist_changes`).

Each change is handed to the event loop, which keeps it for a while for streams that resume
(`ReplayWindow`) and offers it to every subscription; a subscription keeps what it wants in a
backlog of its own (`PendingChanges`), so a slow stream never holds up the others, and one
too far behind is dropped (its client reconnects with the id of the last event it got).
What is a change, who wants it and how it is written are `run_events`' (pure) rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, MutableMapping
from typing import Any

from kubernetes.watch.watch import iter_resp_lines
from urllib3.exceptions import HTTPError

from podtask_api.cluster import (
    ClusterError,
    ClusterUnavailable,
    KubernetesCluster,
    ListExpired,
    ObjectRejected,
    ResourceNotInstalled,
)
from podtask_api.errors import ApiError
from podtask_api.run_events import (
    MAX_PENDING,
    Interest,
    OneRun,
    PendingChanges,
    ReplayWindow,
    RunChange,
    WatchExpired,
    WatchFailed,
    relist_changes,
    watch_change,
)
from podtask_api.services import cluster_failure

log = logging.getLogger("podtask_api")

# How long one watch request lasts before the cluster ends it (and it is opened again).
WATCH_SECONDS = 300
# The watch goes on this long after the last subscriber left: a client that reconnects
# finds it running, with the changes it missed.
IDLE_SECONDS = 30.0
# A subscriber waits this long at most for the watch to start; then the cluster is a 503.
READY_SECONDS = 15.0
# Backoff between failed attempts to reach the cluster.
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 10.0
# Runs per page when listing all of them again after a 410.
RELIST_CHUNK = 500


class Subscription:
    """One event stream's view of the feed: the changes it wants, in order, until it leaves."""

    def __init__(self, feed: RunFeed, interest: Interest) -> None:
        self.interest = interest
        self._feed = feed
        self._pending = PendingChanges(feed.max_pending)
        self._wake = asyncio.Event()
        # Dropped (too far behind) or the feed closed: the stream ends.
        self.ended = False

    def offer(self, change: RunChange) -> None:
        if self.ended or not self.interest.wants(change):
            return
        if not self._pending.add(change):
            log.warning("an event stream fell %d changes behind; it is closed", len(self._pending))
            self.close()
        self._wake.set()

    def take_before(self, version: str) -> list[RunChange]:
        return self._pending.take_before(version)

    async def next(self, timeout: float) -> RunChange | None:
        """The next change; None when `timeout` passed without one, or the stream ended."""
        while not self.ended:
            change = self._pending.take()
            if change is not None:
                return change
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return None
        return None

    def end(self) -> None:
        self.ended = True
        self._wake.set()

    def close(self) -> None:
        """Leave the feed (the stream's client went away, or the stream ended)."""
        self.end()
        self._feed.leave(self)


class RunFeed:
    """TaskRun changes for this process's event streams, from one watch of the cluster."""

    def __init__(
        self,
        cluster: KubernetesCluster,
        *,
        watch_seconds: int = WATCH_SECONDS,
        idle_seconds: float = IDLE_SECONDS,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.cluster = cluster
        self.watch_seconds = watch_seconds
        self.idle_seconds = idle_seconds
        self.max_pending = max_pending
        self._subscriptions: set[Subscription] = set()
        # Read by the watch thread (a whole new set each time: no lock needed).
        self.followed: frozenset[str] = frozenset()
        self._session: WatchSession | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    async def subscribe(self, interest: Interest, last_event_id: str | None = None) -> Subscription:
        """A subscription to the changes `interest` wants, from now (and those after
        `last_event_id`, when the feed still has them). Waits until the watch has started: a
        state read after this returns is older than every change the subscription gets."""
        if self._closed:
            raise ApiError(503, "shutting_down", "the API is shutting down; connect again")
        subscription = Subscription(self, interest)
        self._subscriptions.add(subscription)
        self._followed_changed()
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        session = self._session
        if session is None or not session.thread.is_alive():
            session = self._session = WatchSession(self, asyncio.get_running_loop())
            session.thread.start()
        elif session.window is not None and last_event_id:
            # In the same step as joining: nothing falls between the replay and what follows.
            for change in session.window.since(last_event_id) or ():
                subscription.offer(change)
        try:
            await asyncio.wait_for(session.ready.wait(), READY_SECONDS)
        except TimeoutError:
            subscription.close()
            raise _unavailable(session.trouble) from None
        except BaseException:
            subscription.close()
            raise
        return subscription

    def leave(self, subscription: Subscription) -> None:
        if subscription not in self._subscriptions:
            return
        self._subscriptions.discard(subscription)
        self._followed_changed()
        if not self._subscriptions and self._session is not None and self._idle is None:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self.idle_seconds, self._stop_if_idle)

    def close(self) -> None:
        """End every stream and the watch (the API is stopping)."""
        self._closed = True
        for subscription in list(self._subscriptions):
            subscription.end()
        self._stop_watch()

    def _stop_if_idle(self) -> None:
        self._idle = None
        if not self._subscriptions:
            self._stop_watch()

    def _stop_watch(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        session, self._session = self._session, None
        if session is not None:
            session.stop()

    def _followed_changed(self) -> None:
        self.followed = frozenset(
            s.interest.name for s in self._subscriptions if isinstance(s.interest, OneRun)
        )

    # -- what the watch thread hands to the event loop ----------------------------------------

    def started(self, session: WatchSession, version: str) -> None:
        if session is self._session:
            session.window = ReplayWindow(version)
            session.ready.set()

    def troubled(self, session: WatchSession, trouble: Exception) -> None:
        session.trouble = trouble

    def deliver(self, session: WatchSession, changes: list[RunChange]) -> None:
        if session is not self._session:
            return  # from a watch stopped since
        for change in changes:
            if session.window is not None:
                session.window.add(change)
            for subscription in list(self._subscriptions):
                subscription.offer(change)


def _unavailable(trouble: Exception | None) -> ApiError:
    if isinstance(trouble, ClusterUnavailable | ResourceNotInstalled | ObjectRejected):
        return cluster_failure(trouble)
    detail = f": {trouble}" if trouble is not None else ""
    return ApiError(
        503, "cluster_unavailable", f"the API cannot watch the runs in the cluster{detail}"
    )


class WatchSession:
    """One life of the watch: a thread from the first subscriber until the feed is idle."""

    def __init__(self, feed: RunFeed, loop: asyncio.AbstractEventLoop) -> None:
        self._feed = feed
        self._cluster = feed.cluster
        self._loop = loop
        self.ready = asyncio.Event()
        self.trouble: Exception | None = None
        self.window: ReplayWindow | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None
        self.thread = threading.Thread(target=self._run, name="podtask-run-feed", daemon=True)

    def stop(self) -> None:
        """Stop the thread: at once, even in the middle of reading the watch."""
        self._stopping.set()
        with self._lock:
            response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()  # unblocks the thread's read

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, self, *args)
        except RuntimeError:
            self._stopping.set()  # the event loop is closed: the API is gone

    def _run(self) -> None:
        statuses: dict[str, str] = {}
        version: str | None = None
        backoff = FIRST_BACKOFF_SECONDS
        while not self._stopping.is_set():
            try:
                if version is None:
                    version = self._cluster.runs_version()
                    self._post(self._feed.started, version)
                version = self._watch(version, statuses)
                backoff = FIRST_BACKOFF_SECONDS
            except (WatchExpired, ListExpired):
                log.info("the watch of runs is too old for the cluster; listing them again")
                try:
                    version = self._relist(version, statuses)
                except (ClusterError, HTTPError, OSError, ValueError) as exc:
                    backoff = self._wait_after(exc, backoff)
            except (ClusterError, WatchFailed, HTTPError, OSError, ValueError) as exc:
                backoff = self._wait_after(exc, backoff)
            except Exception as exc:  # a line it cannot read: the streams must not stop
                log.exception("the watch of runs failed unexpectedly")
                backoff = self._wait_after(exc, backoff)

    def _wait_after(self, trouble: Exception, backoff: float) -> float:
        if self._stopping.is_set():
            return backoff
        log.warning("the watch of runs failed (%s); trying again in %gs", trouble, backoff)
        self._post(self._feed.troubled, trouble)
        self._stopping.wait(backoff)
        return min(MAX_BACKOFF_SECONDS, backoff * 2)

    def _watch(self, version: str, statuses: MutableMapping[str, str]) -> str:
        """Follow one watch request to its end; the last version it reached."""
        response = self._cluster.watch_runs(version, self._feed.watch_seconds)
        with self._lock:
            self._response = response
        try:
            if self._stopping.is_set():
                return version
            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                read = watch_change(line, statuses)
                if read.change is not None:
                    self._post(self._feed.deliver, [read.change])
                version = read.version or version
                if self._stopping.is_set():
                    break
        finally:
            with self._lock:
                self._response = None
            response.release_conn()
        return version

    def _relist(self, since: str | None, statuses: MutableMapping[str, str]) -> str:
        """List every run; pass on those changed after `since`; the list's version."""
        items: list[dict[str, Any]] = []
        version: str | None = None
        token: str | None = None
        while True:
            page = self._cluster.list_runs(None, RELIST_CHUNK, token)
            metadata = page.get("metadata") or {}
            version = version or str(metadata.get("resourceVersion") or "")
            items.extend(page.get("items") or [])
            token = metadata.get("continue") or None
            if token is None:
                break
        self._post(self._feed.deliver, relist_changes(items, since, self._feed.followed, statuses))
        return version
