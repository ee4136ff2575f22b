"""The Kubernetes Events of a run, as `GET /api/v1/runs/{id}/kubernetes-events` shows them:
which objects to ask about (the TaskRun and its attempts' pods), and each Event's view.

Events say why a run waited or ended in the cluster's own words: the operator's on the
TaskRun (queued behind a limit, retrying, timed out), the scheduler's and the node's on each
pod (FailedScheduling, Pulled, Started, Killing, OOM). Pure: the route lists them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from podtask._contract.resources import format_timestamp, parse_timestamp
from podtask_api.run_logs import attempt_pod_name

# The newest Events kept in the answer: a run retried many times can have hundreds.
MAX_EVENTS = 200
_NEVER = datetime.min.replace(tzinfo=UTC)  # an Event without a time sorts first


def involved_names(run: Mapping[str, Any]) -> list[str]:
    """The names Events of this run are about: the run, then each attempt's pod."""
    name = str((run.get("metadata") or {}).get("name") or "")
    status = run.get("status") or {}
    started = int(status.get("attempt") or 0)
    recorded = [int(a.get("number") or 0) for a in status.get("attempts") or []]
    attempts = range(1, max([started, *recorded]) + 1)
    return [name, *(attempt_pod_name(name, attempt) for attempt in attempts)]


def _shown(value: datetime | None) -> str | None:
    return format_timestamp(value) if value is not None else None


def _when(event: Mapping[str, Any]) -> datetime | None:
    """When it last happened: core/v1 Events carry lastTimestamp; those written through
    events.k8s.io/v1 only eventTime (and the series' last one)."""
    metadata = event.get("metadata") or {}
    for value in (
        event.get("lastTimestamp"),
        (event.get("series") or {}).get("lastObservedTime"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        metadata.get("creationTimestamp"),
    ):
        if (when := parse_timestamp(value)) is not None:
            return when
    return None


def _source(event: Mapping[str, Any]) -> str | None:
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or None
    return str(component) if component else None


def event_view(event: Mapping[str, Any]) -> dict[str, Any]:
    """One Event as the API shows it."""
    involved = event.get("involvedObject") or {}
    series = event.get("series") or {}
    first = parse_timestamp(event.get("firstTimestamp")) or parse_timestamp(event.get("eventTime"))
    return {
        "type": event.get("type") or "Normal",
        "reason": event.get("reason") or "",
        "message": event.get("message") or event.get("note") or "",
        "object": {"kind": involved.get("kind") or "", "name": involved.get("name") or ""},
        "count": int(event.get("count") or series.get("count") or 1),
        "firstAt": _shown(first or _when(event)),
        "lastAt": _shown(_when(event)),
        "source": _source(event),
    }


def run_events_view(listed: Iterable[Iterable[Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """The Events of every list (one per involved name), each once, oldest first, the newest
    `MAX_EVENTS` of them."""
    seen: set[str] = set()
    events: list[Mapping[str, Any]] = []
    for items in listed:
        for event in items:
            uid = str((event.get("metadata") or {}).get("uid") or id(event))
            if uid not in seen:
                seen.add(uid)
                events.append(event)
    events.sort(key=lambda event: _when(event) or _NEVER)
    return [event_view(event) for event in events[-MAX_EVENTS:]]
