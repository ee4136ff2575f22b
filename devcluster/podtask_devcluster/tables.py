"""Server-side `meta.k8s.io` Table output: the columns `kubectl get` prints.

Pods get kubectl's pod columns, custom resources their CRD's `additionalPrinterColumns`
(evaluated with a JSONPath subset), a few built-ins their usual columns, everything else
NAME and AGE. Ages are rendered the way kubectl renders them for built-ins.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

NAME_DESCRIPTION = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition."
)
AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created."
)


class JsonPathError(ValueError):
    """A printer-column path outside the supported subset."""


# ---------------------------------------------------------------- ages


def human_duration(seconds: float) -> str:
    """kubectl's short age: "5s", "3m2s", "4h", "2d3h", "1y20d"."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def parse_timestamp(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def age(timestamp: Any, now: dt.datetime) -> str:
    if not isinstance(timestamp, str) or not timestamp:
        return "<unknown>"
    try:
        then = parse_timestamp(timestamp)
    except ValueError:
        return "<invalid>"
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    return human_duration((now - then).total_seconds())


# ---------------------------------------------------------------- JSONPath subset

_TOKEN = re.compile(
    r"""\.(?P<field>[A-Za-z0-9_$\-]+)"""
    r"""|\.?\[(?P<index>-?\d+|\*)\]"""
    r"""|\.?\[(?P<quote>['"])(?P<key>.*?)(?P=quote)\]"""
    r"""|\.\*"""
)


def compile_jsonpath(path: str) -> list[str | int | None]:
    """Steps of a path like `.a.b`, `.a[0].b`, `.a[*].b`, `.metadata.labels['x/y']`.
    A step is a field name, a list index, or None for every element."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    if text and not text.startswith((".", "[")):
        text = "." + text
    steps: list[str | int | None] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise JsonPathError(f"unsupported JSONPath {path!r} at {text[position:]!r}")
        if match["field"] is not None:
            steps.append(match["field"])
        elif match["index"] is not None:
            steps.append(None if match["index"] == "*" else int(match["index"]))
        elif match["key"] is not None:
            steps.append(match["key"])
        else:
            steps.append(None)
        position = match.end()
    return steps


def evaluate_jsonpath(path: str, document: Any) -> list[Any]:
    """Every value the path reaches; missing fields reach nothing."""
    current = [document]
    for step in compile_jsonpath(path):
        following: list[Any] = []
        for value in current:
            if step is None:
                if isinstance(value, list):
                    following.extend(value)
                elif isinstance(value, dict):
                    following.extend(value.values())
            elif isinstance(step, int):
                if isinstance(value, list) and -len(value) <= step < len(value):
                    following.append(value[step])
            elif isinstance(value, dict) and step in value:
                following.append(value[step])
        current = following
    return current


def _render_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def printer_cell(column_type: str, values: list[Any], now: dt.datetime) -> Any:
    """One printer-column cell, typed as the apiextensions server types it (None prints
    as `<none>`)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    value = present[0]
    if column_type == "string":
        return ",".join(_render_string(v) for v in present)
    if column_type == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return int(value)
        return None
    if column_type == "number":
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            return float(value)
        return None
    if column_type == "boolean":
        return value if isinstance(value, bool) else None
    if column_type == "date":
        return age(value, now) if isinstance(value, str) else None
    return _render_string(value)


# ---------------------------------------------------------------- columns


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""

    def definition(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }

    @staticmethod
    def from_crd(raw: dict[str, Any]) -> PrinterColumn:
        return PrinterColumn(
            name=str(raw.get("name", "")),
            type=str(raw.get("type", "string")),
            json_path=str(raw.get("jsonPath", "")),
            description=str(raw.get("description", "")),
            priority=int(raw.get("priority", 0) or 0),
            format=str(raw.get("format", "")),
        )


def _column(
    name: str, type_: str, description: str = "", priority: int = 0, fmt: str = ""
) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


NAME_COLUMN = _column("Name", "string", NAME_DESCRIPTION, fmt="name")
AGE_COLUMN = _column("Age", "string", AGE_DESCRIPTION)

Row = list[Any]
RowFunction = Callable[[dict[str, Any], dt.datetime], Row]


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _default_row(obj: dict[str, Any], now: dt.datetime) -> Row:
    meta = _metadata(obj)
    return [meta.get("name", ""), age(meta.get("creationTimestamp"), now)]


def pod_status_reason(pod: dict[str, Any]) -> str:
    """The STATUS kubectl shows for a pod (Pending, Running, Completed, Error, OOMKilled, ...)."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Pending"
    initializing = False
    for index, container in enumerate(status.get("initContainerStatuses") or []):
        state = container.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated and terminated.get("exitCode", 0) == 0:
            continue
        if terminated:
            code = terminated.get("exitCode")
            reason = "Init:" + (terminated.get("reason") or f"ExitCode:{code}")
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            total = len((pod.get("spec") or {}).get("initContainers") or [])
            reason = f"Init:{index}/{total}"
        initializing = True
        break
    if not initializing:
        has_running = False
        for container in reversed(status.get("containerStatuses") or []):
            state = container.get("state") or {}
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated:
                if terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode')}"
            elif container.get("ready") and state.get("running"):
                has_running = True
        if reason == "Completed" and has_running:
            reason = "Running"
    if _metadata(pod).get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return str(reason)


def _pod_row(pod: dict[str, Any], now: dt.datetime) -> Row:
    meta = _metadata(pod)
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    total = len(spec.get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0) or 0) for c in statuses)
    return [
        meta.get("name", ""),
        f"{ready}/{total}",
        pod_status_reason(pod),
        restarts,
        age(meta.get("creationTimestamp"), now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
    ]


POD_COLUMNS = [
    NAME_COLUMN,
    _column("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    _column("Status", "string", "The aggregate status of the containers in this pod."),
    _column(
        "Restarts", "string", "The number of times the containers in this pod have been restarted."
    ),
    AGE_COLUMN,
    _column("IP", "string", "IP address allocated to the pod.", priority=1),
    _column("Node", "string", "Name of the node the pod is assigned to.", priority=1),
]


def _namespace_row(ns: dict[str, Any], now: dt.datetime) -> Row:
    meta = _metadata(ns)
    phase = (ns.get("status") or {}).get("phase") or "Active"
    return [meta.get("name", ""), phase, age(meta.get("creationTimestamp"), now)]


NAMESPACE_COLUMNS = [
    NAME_COLUMN,
    _column("Status", "string", "The status of the namespace"),
    AGE_COLUMN,
]


def _event_row(event: dict[str, Any], now: dt.datetime) -> Row:
    involved = event.get("involvedObject") or {}
    last = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or _metadata(event).get("creationTimestamp")
    )
    kind = str(involved.get("kind", "")).lower()
    return [
        _metadata(event).get("name", ""),
        age(last, now),
        event.get("type", ""),
        event.get("reason", ""),
        f"{kind}/{involved.get('name', '')}",
        str(event.get("message", "")).strip(),
    ]


EVENT_COLUMNS = [
    NAME_COLUMN,
    _column("Last Seen", "string", "Time when this Event was last observed."),
    _column("Type", "string", "Type of this event (Normal, Warning)."),
    _column("Reason", "string", "Why the action was taken."),
    _column("Object", "string", "The object that this event is about."),
    _column("Message", "string", "A human-readable description of the status of this operation."),
]


def _node_row(node: dict[str, Any], now: dt.datetime) -> Row:
    """As kube's printNode: Ready/NotReady/Unknown (SchedulingDisabled when cordoned), the
    roles its labels name, the kubelet's version; wide: addresses and system info."""
    meta = _metadata(node)
    status = node.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    states = [
        "Unknown"
        if ready is None or ready.get("status") not in ("True", "False")
        else ("Ready" if ready["status"] == "True" else "NotReady")
    ]
    if (node.get("spec") or {}).get("unschedulable"):
        states.append("SchedulingDisabled")
    roles = sorted(
        key.split("/", 1)[1]
        for key in meta.get("labels") or {}
        if key.startswith("node-role.kubernetes.io/") and key.split("/", 1)[1]
    )
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [
        meta.get("name", ""),
        ",".join(states),
        ",".join(roles) or "<none>",
        age(meta.get("creationTimestamp"), now),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP") or "<none>",
        addresses.get("ExternalIP") or "<none>",
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


NODE_COLUMNS = [
    NAME_COLUMN,
    _column("Status", "string", "The status of the node"),
    _column("Roles", "string", "The roles of the node"),
    AGE_COLUMN,
    _column("Version", "string", "Kubelet Version reported by the node."),
    _column("Internal-IP", "string", "List of internal IPs for the node.", priority=1),
    _column("External-IP", "string", "List of external IPs for the node.", priority=1),
    _column("OS-Image", "string", "OS Image reported by the node.", priority=1),
    _column("Kernel-Version", "string", "Kernel Version reported by the node.", priority=1),
    _column(
        "Container-Runtime", "string", "Container Runtime Version reported by the node.", priority=1
    ),
]


def _crd_row(crd: dict[str, Any], now: dt.datetime) -> Row:
    meta = _metadata(crd)
    return [meta.get("name", ""), meta.get("creationTimestamp", "")]


CRD_COLUMNS = [NAME_COLUMN, _column("Created At", "date", AGE_DESCRIPTION)]

_BUILTIN: dict[tuple[str, str], tuple[list[dict[str, Any]], RowFunction]] = {
    ("", "pods"): (POD_COLUMNS, _pod_row),
    ("", "namespaces"): (NAMESPACE_COLUMNS, _namespace_row),
    ("", "nodes"): (NODE_COLUMNS, _node_row),
    ("", "events"): (EVENT_COLUMNS, _event_row),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (CRD_COLUMNS, _crd_row),
}


def _custom_columns(
    columns: Sequence[PrinterColumn],
) -> tuple[list[dict[str, Any]], RowFunction]:
    if not columns:
        columns = [PrinterColumn("Age", "date", ".metadata.creationTimestamp", AGE_DESCRIPTION)]
    definitions = [NAME_COLUMN] + [c.definition() for c in columns]

    def row(obj: dict[str, Any], now: dt.datetime) -> Row:
        cells: Row = [_metadata(obj).get("name", "")]
        for column in columns:
            try:
                values = evaluate_jsonpath(column.json_path, obj)
            except JsonPathError:
                values = []
            cells.append(printer_cell(column.type, values, now))
        return cells

    return definitions, row


def columns_for(
    group: str, plural: str, printer_columns: Sequence[PrinterColumn] | None
) -> tuple[list[dict[str, Any]], RowFunction]:
    """Column definitions and the row function for one resource. `printer_columns` is None for
    built-ins and the CRD's columns (possibly empty) for custom resources."""
    if printer_columns is not None:
        return _custom_columns(printer_columns)
    return _BUILTIN.get((group, plural), ([NAME_COLUMN, AGE_COLUMN], _default_row))


def partial_metadata(obj: dict[str, Any], table_version: str) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{table_version}",
        "metadata": _metadata(obj),
    }


def build_table(
    objects: Sequence[dict[str, Any]],
    columns: tuple[list[dict[str, Any]], RowFunction],
    *,
    table_version: str = "v1",
    include_object: str = "Metadata",
    with_headers: bool = True,
    list_metadata: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    definitions, row_function = columns
    moment = now or dt.datetime.now(dt.UTC)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": row_function(obj, moment)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial_metadata(obj, table_version)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{table_version}",
        "metadata": list_metadata or {},
        "columnDefinitions": definitions if with_headers else [],
        "rows": rows,
    }
