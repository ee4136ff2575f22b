"""Deployments: a task image's manifest registered as the current version of its tasks.

`POST /api/v1/deployments` takes the manifest `podtask index` prints, the image that holds
those modules and, optionally, a version (by default `YYYYMMDD.N`, the N-th of the day). It
makes the namespace's `Task` objects exactly the manifest's tasks, each run from that image
at that version, gives each queue its `TaskQueue` and each declared schedule its
DECLARATIVE `TaskSchedule` (by the same rules as `podtask dev`:
`podtask._control.registration`). Triggers read the `Task` at trigger time and copy it into the run,
so new runs take the new version while a run keeps the one it was triggered on.

Each deployment is recorded as a ConfigMap labelled `podtask.dev/deployment=<version>`,
holding the version, image, creation time and manifest; `GET /api/v1/deployments` lists
them newest first (the newest is the current one). The request model, versions, object
names and views are pure; `DeploymentCluster` is the thin IO.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from kubernetes import client
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from podtask._authoring.manifest import Manifest
from podtask._contract.resources import format_timestamp
from podtask._contract.wire import GROUP, LABEL_MANAGED_BY, MANAGED_BY
from podtask._control.declared_schedules import ScheduleNameTaken
from podtask._control.registration import register_manifest, task_resources
from podtask_api.cluster import REQUEST_TIMEOUT, kube_call
from podtask_api.errors import ApiError

LABEL_DEPLOYMENT = f"{GROUP}/deployment"
CONFIG_MAP_PREFIX = "podtask-deployment-"
# A ConfigMap holds at most 1 MiB; the manifest is most of what a deployment records.
MAX_MANIFEST_BYTES = 512 * 1024
# A version is a label value (it labels the deployment's ConfigMap): at most 63 characters
# of letters, digits, '-', '_' and '.', starting and ending with a letter or digit.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# An image reference as Docker reads it: [host[:port]/]path[:tag][@digest], where the first
# component is a host only if it has a dot or a port, or is `localhost`.
_HOST_PART = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_IMAGE = re.compile(
    rf"^(?:(?:{_HOST_PART}(?:\.{_HOST_PART})+(?::[0-9]+)?|{_HOST_PART}:[0-9]+|localhost)/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)


class DeploymentModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class DeploymentRequest(DeploymentModel):
    """`POST /api/v1/deployments`: what `podtask deploy` sends."""

    manifest: Manifest = Field(description="The manifest `podtask index` prints for the image.")
    image: str = Field(
        max_length=512,
        description="The image holding the task modules, as pods pull it "
        "(`registry.example.com/team/tasks:1.4`).",
    )
    version: str | None = Field(
        default=None,
        description="The version its tasks get; by default `YYYYMMDD.N` (the N-th of the day). "
        "At most 63 characters of letters, digits, '-', '_' and '.'.",
    )

    @field_validator("image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        if not _IMAGE.match(value):
            raise ValueError(
                "not an image reference: [registry[:port]/]name[:tag][@sha256:digest], "
                "lowercase name"
            )
        return value

    @field_validator("version")
    @classmethod
    def _label_value(cls, value: str | None) -> str | None:
        if value is not None and not _LABEL_VALUE.match(value):
            raise ValueError(
                "a version is at most 63 characters of letters, digits, '-', '_' and '.', "
                "starting and ending with a letter or digit"
            )
        return value


class DeploymentView(DeploymentModel):
    """One deployment as the API shows it."""

    version: str
    image: str
    created_at: str = Field(description="When it was registered (UTC, ISO 8601).")
    tasks: list[str] = Field(description="The ids of the tasks it deployed.")
    queues: list[str] = Field(description="The names of the queues its tasks use.")


class DeploymentList(DeploymentModel):
    deployments: list[DeploymentView] = Field(description="Newest (the current one) first.")


def manifest_json(manifest: Manifest) -> str:
    """The manifest as the deployment records it; 413 over `MAX_MANIFEST_BYTES`, 422 for a
    number JSON cannot hold."""
    try:
        text = json.dumps(manifest.to_wire(), separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise ApiError(
            422,
            "invalid_request",
            "invalid manifest — it holds a number JSON cannot carry (NaN or Infinity)",
            [{"field": "manifest", "message": "NaN or Infinity", "type": "value_error"}],
        ) from None
    size = len(text.encode())
    if size > MAX_MANIFEST_BYTES:
        raise ApiError(
            413,
            "manifest_too_large",
            f"the manifest is {size} bytes; a deployment's manifest may be at most "
            f"{MAX_MANIFEST_BYTES} bytes",
        )
    return text


def next_version(existing: Iterable[str], today: date) -> str:
    """`YYYYMMDD.N`: one past the highest N of today's versions, else `.1`."""
    prefix = today.strftime("%Y%m%d")
    pattern = re.compile(rf"^{prefix}\.([0-9]+)$")
    numbers = [int(found.group(1)) for v in existing if (found := pattern.match(v))]
    return f"{prefix}.{max(numbers, default=0) + 1}"


def config_map_name(version: str) -> str:
    """The name of the ConfigMap that records `version`: readable, and one per version.

    A version that is not already lowercase DNS text is slugged and given a digest suffix,
    so that `V1` and `v1` do not share a name.
    """
    name = CONFIG_MAP_PREFIX + version
    if _DNS_SUBDOMAIN.match(name):
        return name
    slug = re.sub(r"[^a-z0-9]+", "-", version.lower()).strip("-")
    suffix = hashlib.sha256(version.encode()).hexdigest()[:10]
    return f"{CONFIG_MAP_PREFIX}{slug}-{suffix}" if slug else f"{CONFIG_MAP_PREFIX}{suffix}"


def deployment_record(
    version: str, image: str, manifest: Manifest, manifest_text: str, created_at: datetime
) -> dict[str, Any]:
    """The ConfigMap that records a deployment."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": config_map_name(version),
            "labels": {LABEL_DEPLOYMENT: version, LABEL_MANAGED_BY: MANAGED_BY},
        },
        "data": {
            "version": version,
            "image": image,
            "createdAt": format_timestamp(created_at),
            "tasks": json.dumps([task.id for task in manifest.tasks]),
            "queues": json.dumps([queue.name for queue in manifest.queues]),
            "manifest": manifest_text,
        },
    }


def _names(text: str | None) -> list[str]:
    try:
        names = json.loads(text or "[]")
    except ValueError:
        return []
    return [name for name in names if isinstance(name, str)] if isinstance(names, list) else []


def deployment_view(record: dict[str, Any]) -> DeploymentView | None:
    """The deployment a ConfigMap records; None for one that does not record one."""
    data = record.get("data") or {}
    try:
        return DeploymentView(
            version=data["version"],
            image=data["image"],
            created_at=data["createdAt"],
            tasks=_names(data.get("tasks")),
            queues=_names(data.get("queues")),
        )
    except (KeyError, ValidationError):
        return None


def newest_first(records: Iterable[dict[str, Any]]) -> list[DeploymentView]:
    views = [view for record in records if (view := deployment_view(record)) is not None]
    # ISO 8601 UTC times of one width sort as text; the version breaks ties of one instant.
    return sorted(views, key=lambda view: (view.created_at, view.version), reverse=True)


def version_taken(version: str) -> ApiError:
    return ApiError(
        409,
        "deployment_exists",
        f"version {version!r} is already deployed: deploy a new version (or leave `version` "
        "out to get the next one)",
        {"version": version},
    )


def schedule_name_taken(taken: ScheduleNameTaken) -> ApiError:
    """A task's declared schedule named like an IMPERATIVE schedule: nothing was registered."""
    return ApiError(
        409, "schedule_conflict", str(taken), {"task": taken.task_id, "schedule": taken.name}
    )


def refused_by_dev_server() -> ApiError:
    """`POST /api/v1/deployments` to a `podtask dev` whose pods run as processes (or are
    simulated): they run this machine's files (or nothing), not the deployed image, so its
    tasks would be replaced by ones whose module files are looked for in the folder
    `podtask dev` started in ("no such file" when the deploy ran elsewhere)."""
    return ApiError(
        409,
        "dev_server",
        "this API is a `podtask dev` server whose pods run this machine's files (or are "
        "simulated), not images: "
        "its tasks are the modules it serves, and it takes no deployment. Deploy to a "
        "cluster's API (set PODTASK_API_URL to it), or run deployed images locally with "
        "`podtask dev --runtime containers`",
    )


def deployment_versions(records: Sequence[dict[str, Any]]) -> list[str]:
    return [
        str(((record.get("metadata") or {}).get("labels") or {}).get(LABEL_DEPLOYMENT, ""))
        for record in records
    ]


class DeploymentCluster:
    """Deployment records (ConfigMaps) and registrations in one namespace; every method may
    block, and raises the `ClusterError`s of `podtask_api.cluster`."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self._core = client.CoreV1Api(api_client)

    def records(self) -> list[dict[str, Any]]:
        def list_records() -> list[dict[str, Any]]:
            listed = self._core.list_namespaced_config_map(
                self.namespace, label_selector=LABEL_DEPLOYMENT, _request_timeout=REQUEST_TIMEOUT
            )
            serialized: list[dict[str, Any]] = [
                self.api_client.sanitize_for_serialization(item) for item in listed.items
            ]
            return serialized

        return kube_call("ConfigMap", None, list_records)

    def create_record(self, body: Any) -> None:
        kube_call(
            "ConfigMap",
            None,
            lambda: self._core.create_namespaced_config_map(
                self.namespace, body, _request_timeout=REQUEST_TIMEOUT
            ),
        )

    def delete_record(self, name: str) -> None:
        kube_call(
            "ConfigMap",
            name,
            lambda: self._core.delete_namespaced_config_map(
                name, self.namespace, _request_timeout=REQUEST_TIMEOUT
            ),
        )

    def register(self, manifest: Manifest, image: str, version: str) -> None:
        tasks = task_resources(manifest, self.namespace, image=image, version_of=lambda _: version)
        try:
            kube_call(
                "Task",
                None,
                lambda: register_manifest(self.api_client, self.namespace, tasks, manifest.queues),
            )
        except ScheduleNameTaken as taken:
            raise schedule_name_taken(taken) from None
