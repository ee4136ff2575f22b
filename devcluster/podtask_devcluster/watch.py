"""`WatchStream`: one watch request's life, as kube-apiserver's watch cache serves it. The
backlog (the objects when watching from now or `sendInitialEvents`, else the events since the
resourceVersion, or 410 Gone when that is older than the kept history) and the subscription
are taken in one synchronous step, so no event falls between; then events are filtered by
namespace, labels and fields (an object leaving the selection is a DELETED, one entering it
an ADDED), encoded as JSON or Table rows, with bookmarks when asked and an end at
`timeoutSeconds` or when the server stops."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from podtask_devcluster import errors, tables
from podtask_devcluster.discovery import ResourceType
from podtask_devcluster.registry import Registry
from podtask_devcluster.selectors import FieldSelector, LabelSelector, parse_label_selector
from podtask_devcluster.store import JsonObject, ObjectStore, Watcher, WatchEvent

BOOKMARK_INTERVAL_SECONDS = 10.0
# Without bookmarks a quiet watch still wakes now and then to notice the server stopping.
IDLE_WAKE_SECONDS = 3600.0


def _line(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


@dataclass(frozen=True)
class WatchRequest:
    """What a watch asks for, from its query parameters."""

    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    resource_version: str
    send_initial_events: bool
    bookmarks: bool
    timeout: float | None
    table_version: str | None
    include_object: str

    @classmethod
    def parse(
        cls,
        params: dict[str, str],
        namespace: str | None,
        fields: FieldSelector,
        table_version: str | None,
    ) -> WatchRequest:
        labels = parse_label_selector(params.get("labelSelector"))
        timeout_text = params.get("timeoutSeconds")
        try:
            timeout = float(timeout_text) if timeout_text else None
        except ValueError as error:
            raise errors.bad_request(f"invalid timeoutSeconds {timeout_text!r}") from error
        return cls(
            namespace=namespace,
            labels=labels,
            fields=fields,
            resource_version=params.get("resourceVersion") or "",
            send_initial_events=params.get("sendInitialEvents") == "true",
            bookmarks=params.get("allowWatchBookmarks") in ("true", "1"),
            timeout=timeout,
            table_version=table_version,
            include_object=params.get("includeObject", "Metadata"),
        )

    @property
    def from_now(self) -> bool:
        """The current objects first (no version, version 0, or sendInitialEvents)."""
        return self.resource_version in ("", "0") or self.send_initial_events

    @property
    def sends_bookmarks(self) -> bool:
        # Table watches (kubectl get -w) get no periodic bookmarks.
        return self.bookmarks and self.table_version is None


class WatchStream:
    def __init__(self, store: ObjectStore, resource: ResourceType, request: WatchRequest) -> None:
        self._store = store
        self._resource = resource
        self._request = request
        self._first_row = True
        self._backlog: list[tuple[str, JsonObject, JsonObject | None]] = []
        self._expired: errors.StatusError | None = None
        key = resource.storage_key
        if request.from_now:
            current = store.objects_of(key, request.namespace)
            self._backlog = [("ADDED", obj, None) for obj in current]
        else:
            try:
                since = int(request.resource_version)
            except ValueError as error:
                raise errors.bad_request(
                    f"invalid resourceVersion {request.resource_version!r}"
                ) from error
            floor = store.history_floor(key)
            if since < floor:
                self._expired = errors.gone(f"too old resource version: {since} ({floor})")
            else:
                self._backlog = [
                    (event.type, event.object, event.previous)
                    for event in store.events_since(key, since)
                ]
        self._watcher: Watcher | None = store.add_watcher(key) if self._expired is None else None

    async def lines(self, stopping: asyncio.Event) -> AsyncIterator[bytes]:
        """The stream's lines, until the timeout or `stopping`; the subscription ends with
        them."""
        try:
            if self._expired is not None:
                yield _line({"type": "ERROR", "object": self._expired.status()})
                return
            assert self._watcher is not None
            for kind, obj, previous in self._backlog:
                line = self._translate(kind, obj, previous)
                if line is not None:
                    yield line
            if self._request.send_initial_events and self._request.bookmarks:
                yield self._bookmark(initial_end=True)
            async for line in self._live(self._watcher, stopping):
                yield line
        finally:
            if self._watcher is not None:
                self._store.remove_watcher(self._watcher)

    async def _live(self, watcher: Watcher, stopping: asyncio.Event) -> AsyncIterator[bytes]:
        timeout = self._request.timeout
        deadline = time.monotonic() + timeout if timeout is not None else None
        while not stopping.is_set():
            wait = BOOKMARK_INTERVAL_SECONDS if self._request.sends_bookmarks else IDLE_WAKE_SECONDS
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            try:
                event: WatchEvent | None = await asyncio.wait_for(watcher.queue.get(), wait)
            except TimeoutError:
                if self._request.sends_bookmarks and watcher.queue.empty():
                    yield self._bookmark()
                continue
            if event is None:
                return
            line = self._translate(event.type, event.object, event.previous)
            if line is not None:
                yield line

    def _matches(self, obj: JsonObject | None) -> bool:
        if obj is None:
            return False
        request = self._request
        if request.namespace is not None and obj["metadata"].get("namespace") != request.namespace:
            return False
        return request.labels.matches(obj["metadata"].get("labels")) and request.fields.matches(obj)

    def _translate(self, kind: str, obj: JsonObject, previous: JsonObject | None) -> bytes | None:
        """The event as this watch sees it through its selectors (None: not at all)."""
        now_matches = self._matches(obj)
        if kind == "ADDED":
            return self._encode("ADDED", obj) if now_matches else None
        if kind == "DELETED":
            return self._encode("DELETED", obj) if now_matches or self._matches(previous) else None
        was_matching = self._matches(previous)
        if now_matches:
            return self._encode("MODIFIED" if was_matching else "ADDED", obj)
        if was_matching:
            return self._encode("DELETED", obj)
        return None

    def _encode(self, kind: str, obj: JsonObject) -> bytes:
        resource = self._resource
        presented = Registry.present(resource, obj)
        if self._request.table_version is not None:
            presented = tables.build_table(
                [presented],
                tables.columns_for(resource.group, resource.plural, resource.printer_columns),
                table_version=self._request.table_version,
                include_object=self._request.include_object,
                with_headers=self._first_row,
            )
            self._first_row = False
        return _line({"type": kind, "object": presented})

    def _bookmark(self, initial_end: bool = False) -> bytes:
        meta: JsonObject = {"resourceVersion": str(self._store.resource_version)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return _line(
            {
                "type": "BOOKMARK",
                "object": {
                    "kind": self._resource.kind,
                    "apiVersion": self._resource.api_version,
                    "metadata": meta,
                },
            }
        )
