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
    hours = whole // 3600
    days = hours // 24
    if minutes < 10:
        return _units(minutes, "m", whole % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return _units(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return _units(days, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return _units(days // 365, "y", days % 365, "d")
    return f"{days // 365}y"


def _units(whole: int, unit: str, rest: int, rest_unit: str) -> str:
    """ "3m2s", or "3m" when nothing is left over."""
    return f"{whole}{unit}" if rest == 0 else f"{whole}{unit}{rest}{rest_unit}"


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


_NUMBER_TYPES: dict[str, Callable[[float], int | float]] = {"integer": int, "number": float}


def printer_cell(column_type: str, values: list[Any], now: dt.datetime) -> Any:
    """One printer-column cell, typed as the apiextensions server types it (None prints
    as `<none>`)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    value = present[0]
    if column_type == "string":
        return ",".join(_render_string(v) for v in present)
    if column_type in _NUMBER_TYPES:
        # A JSON number (not a boolean) as the column's type; anything else prints <none>.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _NUMBER_TYPES[column_type](value)
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
    name: str, description: str, *, wide: bool = False, type_: str = "string", fmt: str = ""
) -> PrinterColumn:
    """A built-in resource's column: a string its row function renders (no JSONPath);
    `wide` ones show only with `-o wide` (priority 1)."""
    return PrinterColumn(name, type_, "", description, priority=1 if wide else 0, format=fmt)


# Every table starts with it; `columns_for` adds it and each row's name.
NAME_COLUMN = _column("Name", NAME_DESCRIPTION, fmt="name")
AGE_COLUMN = _column("Age", AGE_DESCRIPTION)

Row = list[Any]
RowFunction = Callable[[dict[str, Any], dt.datetime], Row]
# The columns after Name, and the function that renders an object's cells under them.
Printer = tuple[Sequence[PrinterColumn], RowFunction]


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _age_row(obj: dict[str, Any], now: dt.datetime) -> Row:
    return [age(_metadata(obj).get("creationTimestamp"), now)]


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
        f"{ready}/{total}",
        pod_status_reason(pod),
        restarts,
        age(meta.get("creationTimestamp"), now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
    ]


POD_COLUMNS = [
    _column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    _column("Status", "The aggregate status of the containers in this pod."),
    _column("Restarts", "The number of times the containers in this pod have been restarted."),
    AGE_COLUMN,
    _column("IP", "IP address allocated to the pod.", wide=True),
    _column("Node", "Name of the node the pod is assigned to.", wide=True),
]


def _namespace_row(ns: dict[str, Any], now: dt.datetime) -> Row:
    meta = _metadata(ns)
    phase = (ns.get("status") or {}).get("phase") or "Active"
    return [phase, age(meta.get("creationTimestamp"), now)]


NAMESPACE_COLUMNS = [_column("Status", "The status of the namespace"), AGE_COLUMN]


def _event_row(event: dict[str, Any], now: dt.datetime) -> Row:
    involved = event.get("involvedObject") or {}
    last = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or _metadata(event).get("creationTimestamp")
    )
    kind = str(involved.get("kind", "")).lower()
    return [
        age(last, now),
        event.get("type", ""),
        event.get("reason", ""),
        f"{kind}/{involved.get('name', '')}",
        str(event.get("message", "")).strip(),
    ]


EVENT_COLUMNS = [
    _column("Last Seen", "Time when this Event was last observed."),
    _column("Type", "Type of this event (Normal, Warning)."),
    _column("Reason", "Why the action was taken."),
    _column("Object", "The object that this event is about."),
    _column("Message", "A human-readable description of the status of this operation."),
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
    _column("Status", "The status of the node"),
    _column("Roles", "The roles of the node"),
    AGE_COLUMN,
    _column("Version", "Kubelet Version reported by the node."),
    _column("Internal-IP", "List of internal IPs for the node.", wide=True),
    _column("External-IP", "List of external IPs for the node.", wide=True),
    _column("OS-Image", "OS Image reported by the node.", wide=True),
    _column("Kernel-Version", "Kernel Version reported by the node.", wide=True),
    _column("Container-Runtime", "Container Runtime Version reported by the node.", wide=True),
]


def _crd_row(crd: dict[str, Any], now: dt.datetime) -> Row:
    return [_metadata(crd).get("creationTimestamp", "")]


CRD_COLUMNS = [_column("Created At", AGE_DESCRIPTION, type_="date")]

_BUILTIN: dict[tuple[str, str], Printer] = {
    ("", "pods"): (POD_COLUMNS, _pod_row),
    ("", "namespaces"): (NAMESPACE_COLUMNS, _namespace_row),
    ("", "nodes"): (NODE_COLUMNS, _node_row),
    ("", "events"): (EVENT_COLUMNS, _event_row),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (CRD_COLUMNS, _crd_row),
}


def _custom_printer(columns: Sequence[PrinterColumn]) -> Printer:
    if not columns:
        columns = [PrinterColumn("Age", "date", ".metadata.creationTimestamp", AGE_DESCRIPTION)]

    def cells(obj: dict[str, Any], now: dt.datetime) -> Row:
        row: Row = []
        for column in columns:
            try:
                values = evaluate_jsonpath(column.json_path, obj)
            except JsonPathError:
                values = []
            row.append(printer_cell(column.type, values, now))
        return row

    return columns, cells


def columns_for(
    group: str, plural: str, printer_columns: Sequence[PrinterColumn] | None
) -> tuple[list[dict[str, Any]], RowFunction]:
    """Column definitions and the row function for one resource, Name first. `printer_columns`
    is None for built-ins and the CRD's columns (possibly empty) for custom resources."""
    if printer_columns is not None:
        columns, cells = _custom_printer(printer_columns)
    else:
        columns, cells = _BUILTIN.get((group, plural), ([AGE_COLUMN], _age_row))

    def row(obj: dict[str, Any], now: dt.datetime) -> Row:
        return [_metadata(obj).get("name", ""), *cells(obj, now)]

    return [column.definition() for column in (NAME_COLUMN, *columns)], row


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
