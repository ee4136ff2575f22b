"""CustomResourceDefinitions generated from the pydantic models in `podtask._contract.resources`.

`make crds` runs `python -m podtask._contract.crds crds/`; a test fails when `crds/` drifts
from what this module produces, so the models stay the one source of truth.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from podtask._contract.resources import (
    STORED_MAX_LENGTH,
    TaskQueueSpec,
    TaskQueueStatus,
    TaskRunSpec,
    TaskRunStatus,
    TaskScheduleSpec,
    TaskScheduleStatus,
    TaskSpec,
)
from podtask._contract.wire import (
    GROUP,
    TASK_KIND,
    TASK_QUEUE_KIND,
    TASK_QUEUES,
    TASK_RUN_KIND,
    TASK_RUNS,
    TASK_SCHEDULE_KIND,
    TASK_SCHEDULES,
    TASKS,
    VERSION,
)

CATEGORY = "podtask"

# Keys of pydantic's JSON schema that a structural CRD schema does not take.
_DROPPED_KEYS = {"title", "default", "$defs"}


def _structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Turn one pydantic JSON-schema node into a Kubernetes structural schema node."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _structural(merged, defs)
    variants = schema.get("anyOf")
    if variants is not None:
        non_null = [v for v in variants if v.get("type") != "null"]
        if len(non_null) == 1:
            rest = {k: v for k, v in schema.items() if k != "anyOf"}
            node = _structural({**non_null[0], **rest}, defs)
            node["nullable"] = True
            return node
        return {"x-kubernetes-preserve-unknown-fields": True}
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED_KEYS or key == "required":
            continue
        if key == "properties":
            out["properties"] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out["items"] = _structural(value, defs)
        elif key == STORED_MAX_LENGTH:
            out["maxLength"] = value
        elif key == "additionalProperties":
            if value in ({}, True):
                out["x-kubernetes-preserve-unknown-fields"] = True
            else:
                out["additionalProperties"] = _structural(value, defs)
        else:
            out[key] = value
    if "type" not in out and "x-kubernetes-preserve-unknown-fields" not in out:
        # A field typed `Any`: arbitrary JSON, kept as it is.
        out["x-kubernetes-preserve-unknown-fields"] = True
    required = schema.get("required")
    if required:
        out["required"] = list(required)
    return out


def openapi_schema(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="serialization")
    return _structural(raw, raw.get("$defs", {}))


def _column(name: str, path: str, type_: str = "string", priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


_AGE = _column("Age", ".metadata.creationTimestamp", "date")


def _crd(
    kind: str,
    plural: str,
    short_names: list[str],
    spec: type[BaseModel],
    status: type[BaseModel] | None,
    columns: list[dict[str, Any]],
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": openapi_schema(spec),
    }
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {"type": "object", "required": ["spec"], "properties": properties}
        },
        "additionalPrinterColumns": [*columns, _AGE],
    }
    if status is not None:
        properties["status"] = openapi_schema(status)
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": [CATEGORY],
            },
            "versions": [version],
        },
    }


def custom_resource_definitions() -> list[dict[str, Any]]:
    """The CRDs of `Task`, `TaskQueue`, `TaskRun` and `TaskSchedule`, in install order."""
    return [
        _crd(
            TASK_KIND,
            TASKS,
            ["ptask"],
            TaskSpec,
            None,
            [
                _column("Task", ".spec.taskId"),
                _column("Version", ".spec.version"),
                _column("Queue", ".spec.queue.name"),
                _column("Machine", ".spec.machine"),
                _column("Image", ".spec.image", priority=1),
            ],
        ),
        _crd(
            TASK_QUEUE_KIND,
            TASK_QUEUES,
            ["tq"],
            TaskQueueSpec,
            TaskQueueStatus,
            [
                # The limit in force, which the operator writes: a queue that declares none
                # shows the operator's default rather than nothing.
                _column("Limit", ".status.limitInForce", "integer"),
                _column("Paused", ".spec.paused", "boolean"),
                _column("Running", ".status.running", "integer"),
                _column("Queued", ".status.queued", "integer"),
            ],
        ),
        _crd(
            TASK_RUN_KIND,
            TASK_RUNS,
            ["tr"],
            TaskRunSpec,
            TaskRunStatus,
            [
                _column("Task", ".spec.taskId"),
                _column("Status", ".status.phase"),
                _column("Attempt", ".status.attempt", "integer"),
                _column("Queue", ".spec.queue.name"),
                _column("Machine", ".status.machine"),
                _column("Duration", ".status.duration"),
                _column("Error", ".status.error.message", priority=1),
                _column("Waiting For", ".status.wait.waitingFor", priority=1),
                # `-o wide` only: most runs are not tests, and the default view stays narrow.
                _column("Test", ".spec.isTest", "boolean", priority=1),
            ],
        ),
        _crd(
            TASK_SCHEDULE_KIND,
            TASK_SCHEDULES,
            ["tsched"],
            TaskScheduleSpec,
            TaskScheduleStatus,
            [
                _column("Task", ".spec.taskId"),
                _column("Cron", ".spec.cron"),
                _column("Timezone", ".spec.timezone"),
                _column("Active", ".spec.active", "boolean"),
                _column("Last", ".status.lastTimestamp", "date"),
                _column("Next", ".status.nextTimestamp", "date"),
                _column("Type", ".spec.type", priority=1),
                _column("External ID", ".spec.externalId", priority=1),
            ],
        ),
    ]


def crd_files() -> dict[str, str]:
    """File name → YAML text, exactly as `make crds` writes them."""
    header = "# Generated by `make crds` from podtask._contract.resources. Do not edit.\n"
    return {
        f"{crd['metadata']['name']}.yaml": header + yaml.safe_dump(crd, sort_keys=False)
        for crd in custom_resource_definitions()
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0] if args else "crds")
    target.mkdir(parents=True, exist_ok=True)
    for stale in target.glob("*.yaml"):
        stale.unlink()
    for name, text in crd_files().items():
        (target / name).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
