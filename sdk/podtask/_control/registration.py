"""Registering a manifest in a namespace: a `Task` per task, a `TaskQueue` per queue, a
DECLARATIVE `TaskSchedule` per task that declares a schedule.

`podtask dev` registers the modules it serves at start; the API's `POST /api/v1/deployments`
registers each deployed image. Both go through here, so both follow the same rules:

- the `Task` objects become exactly the manifest's tasks (a task no longer declared is no
  longer deployed), each spec replaced whole;
- each declared queue gets its `TaskQueue`; a limit changed live (`kubectl patch`, the API)
  survives until the declaration itself changes (`DECLARED_LIMIT_ANNOTATION`); `paused` is
  never touched;
- a `TaskQueue` a registration made and the manifest no longer declares (so no task of the
  namespace uses it) is deleted once no unfinished run names it: until then its pause and
  limit still hold those runs, and a later registration deletes it (`stale_queues`). As
  Trigger.dev lists the queues of the current deployment, the queues listed are then the
  current tasks' and those with runs left;
- the DECLARATIVE `TaskSchedule`s become exactly the declared schedules, `active` kept, and
  IMPERATIVE ones are never touched (`declared_schedules`).

The objects and the changes are pure functions; `register_manifest` applies them through
the (synchronous) Kubernetes client, whose `ApiException`s it lets through.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from podtask._authoring.manifest import Manifest, ManifestTask, is_valid_queue_name
from podtask._contract.resources import FINAL_PHASES, QueueRef
from podtask._contract.wire import (
    API_VERSION,
    GROUP,
    LABEL_QUEUE,
    TASK_KIND,
    TASK_QUEUE_KIND,
    TASK_QUEUES,
    TASK_RUNS,
    TASK_SCHEDULES,
    TASKS,
    VERSION,
)
from podtask._control.declared_schedules import (
    ScheduleChanges,
    declared_schedules,
    schedule_changes,
)

# The concurrency limit a TaskQueue was last given from its declaration (JSON: a number or
# null). A limit changed live differs from it and survives a restart; a new declaration wins.
DECLARED_LIMIT_ANNOTATION = f"{GROUP}/declared-concurrency-limit"

_FINAL_PHASES = frozenset(phase.value for phase in FINAL_PHASES)
# Runs read per page when looking for unfinished runs of queues no longer declared.
_RUN_PAGE = 500
# Objects read per page when listing a namespace's (IMPERATIVE schedules may be many).
_LIST_PAGE = 500
_JSON_PATCH = "application/json-patch+json"
_MERGE_PATCH = "application/merge-patch+json"
_REQUEST_TIMEOUT = (5, 30)


def task_resources(
    manifest: Manifest,
    namespace: str,
    *,
    image: str,
    version_of: Callable[[ManifestTask], str],
) -> list[dict[str, Any]]:
    """The `Task` objects for every task in the manifest, run from `image`; a task's version is
    the manifest's, else `version_of(task)`."""
    return [
        {
            "apiVersion": API_VERSION,
            "kind": TASK_KIND,
            "metadata": {"name": task.id, "namespace": namespace},
            "spec": task.task_spec(image=image, default_version=version_of(task)).to_wire(),
        }
        for task in manifest.tasks
    ]


@dataclass(frozen=True)
class TaskChanges:
    """What makes the `Task` objects of a namespace exactly the wanted ones."""

    create: list[dict[str, Any]]
    replace: list[dict[str, Any]]
    delete: list[str]


def task_changes(current: Iterable[str], wanted: Sequence[dict[str, Any]]) -> TaskChanges:
    """Create what is missing, replace what exists, delete what is no longer wanted."""
    existing = set(current)
    wanted_names = {body["metadata"]["name"] for body in wanted}
    return TaskChanges(
        create=[body for body in wanted if body["metadata"]["name"] not in existing],
        replace=[body for body in wanted if body["metadata"]["name"] in existing],
        delete=sorted(existing - wanted_names),
    )


def task_spec_patch(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON patch that replaces a `Task`'s spec with `body`'s, whole.

    Not a merge patch: that would keep a field the new spec no longer has (a max duration
    removed from the declaration would stay).
    """
    return [{"op": "replace", "path": "/spec", "value": body["spec"]}]


def declared_limit(queue: QueueRef) -> str:
    """The value of `DECLARED_LIMIT_ANNOTATION` for `queue`'s declaration."""
    return json.dumps(queue.concurrency_limit)


def queue_resource(queue: QueueRef, namespace: str) -> dict[str, Any]:
    """The `TaskQueue` object for a declared queue, as first created (not paused)."""
    return {
        "apiVersion": API_VERSION,
        "kind": TASK_QUEUE_KIND,
        "metadata": {
            "name": queue.name,
            "namespace": namespace,
            "annotations": {DECLARED_LIMIT_ANNOTATION: declared_limit(queue)},
        },
        # An undeclared limit is null: the operator applies its default.
        "spec": {"concurrencyLimit": queue.concurrency_limit, "paused": False},
    }


def queue_patch(existing: dict[str, Any], queue: QueueRef) -> dict[str, Any] | None:
    """The merge patch that brings an existing `TaskQueue` to `queue`'s declaration, or None.

    None when the declaration is the one last applied, so that a limit changed live
    (`kubectl patch taskqueue`) stays; `paused` is never touched. A queue without the
    annotation was not made from a declaration, which then wins.
    """
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    declared = declared_limit(queue)
    if annotations.get(DECLARED_LIMIT_ANNOTATION) == declared:
        return None
    # A null limit in a merge patch removes the field, which reads as null too.
    return {
        "metadata": {"annotations": {DECLARED_LIMIT_ANNOTATION: declared}},
        "spec": {"concurrencyLimit": queue.concurrency_limit},
    }


def stale_queues(
    existing: Mapping[str, Mapping[str, Any]], declared: Iterable[str], in_use: Iterable[str]
) -> list[str]:
    """The `TaskQueue`s a registration deletes, of `existing` (by name): made by a registration
    (they carry `DECLARED_LIMIT_ANNOTATION`; one made by hand is the user's), no longer
    declared, and named by no unfinished run (`in_use`)."""
    kept = set(declared) | set(in_use)
    return sorted(
        name
        for name, queue in existing.items()
        if name not in kept
        and DECLARED_LIMIT_ANNOTATION in ((queue.get("metadata") or {}).get("annotations") or {})
    )


def unfinished_queue_names(runs: Iterable[Mapping[str, Any]]) -> set[str]:
    """The queues of the runs that are not final (a run of an open batch has no phase yet)."""
    return {
        str(((run.get("spec") or {}).get("queue") or {}).get("name"))
        for run in runs
        if (run.get("status") or {}).get("phase") not in _FINAL_PHASES
    }


class _Objects:
    """The podtask objects of one namespace through the Kubernetes client."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes import client

        self._client = client
        self._api = client.CustomObjectsApi(api_client)
        self.namespace = namespace

    def list(self, plural: str) -> dict[str, dict[str, Any]]:
        """Every object of `plural`, by name, read page by page."""
        found: dict[str, dict[str, Any]] = {}
        token: str | None = None
        while True:
            page: dict[str, Any] = self._api.list_namespaced_custom_object(  # type: ignore[assignment]
                GROUP,
                VERSION,
                self.namespace,
                plural,
                limit=_LIST_PAGE,
                _continue=token,
                _request_timeout=_REQUEST_TIMEOUT,
            )
            found |= {item["metadata"]["name"]: item for item in page.get("items") or []}
            token = (page.get("metadata") or {}).get("continue") or None
            if token is None:
                return found

    def get(self, plural: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self._api.get_namespaced_custom_object(  # type: ignore[assignment]
            GROUP, VERSION, self.namespace, plural, name, _request_timeout=_REQUEST_TIMEOUT
        )
        return found

    def create(self, plural: str, body: dict[str, Any]) -> None:
        self._api.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, body, _request_timeout=_REQUEST_TIMEOUT
        )

    def patch(self, plural: str, name: str, patch: Any, content_type: str) -> None:
        self._api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            plural,
            name,
            patch,
            _content_type=content_type,
            _request_timeout=_REQUEST_TIMEOUT,
        )

    def delete(self, plural: str, name: str, preconditions: dict[str, str] | None = None) -> None:
        self._api.delete_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            plural,
            name,
            body=self._client.V1DeleteOptions(
                preconditions=self._client.V1Preconditions(**preconditions)
            )
            if preconditions
            else None,
            _request_timeout=_REQUEST_TIMEOUT,
        )

    def queues_in_use(self, queues: Iterable[str]) -> set[str]:
        """Which of `queues` an unfinished run names: the runs labelled with them, page by
        page, until each is found or none is left."""
        wanted = sorted(queues)
        found: set[str] = set()
        token: str | None = None
        while wanted and not found.issuperset(wanted):
            page: dict[str, Any] = self._api.list_namespaced_custom_object(  # type: ignore[assignment]
                GROUP,
                VERSION,
                self.namespace,
                TASK_RUNS,
                label_selector=f"{LABEL_QUEUE} in ({','.join(wanted)})",
                limit=_RUN_PAGE,
                _continue=token,
                _request_timeout=_REQUEST_TIMEOUT,
            )
            found |= unfinished_queue_names(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or None
            if token is None:
                break
        return found & set(wanted)


_ALREADY_EXISTS = 409
_NOT_FOUND = 404


def _call_unless(status: int, call: Callable[..., None], *args: Any) -> bool:
    """`call(*args)`: True when it succeeded, False when the cluster answered `status` (an
    object created or deleted meanwhile, by a concurrent deployment); any other error raises."""
    from kubernetes.client.exceptions import ApiException

    try:
        call(*args)
    except ApiException as exc:
        if getattr(exc, "status", None) != status:
            raise
        return False
    return True


def register_queues(objects: _Objects, queues: Sequence[QueueRef]) -> None:
    current = objects.list(TASK_QUEUES)
    for queue in queues:
        existing = current.get(queue.name)
        if existing is None:
            created = queue_resource(queue, objects.namespace)
            if _call_unless(_ALREADY_EXISTS, objects.create, TASK_QUEUES, created):
                continue
            # Created meanwhile: bring it to the declaration.
            existing = objects.get(TASK_QUEUES, queue.name)
        patch = queue_patch(existing, queue)
        if patch is not None:
            objects.patch(TASK_QUEUES, queue.name, patch, _MERGE_PATCH)


def register_tasks(objects: _Objects, changes: TaskChanges) -> None:
    """Create and replace the wanted `Task`s (`remove_tasks` deletes the others)."""
    for body in changes.create:
        if not _call_unless(_ALREADY_EXISTS, objects.create, TASKS, body):
            # Created meanwhile: replaced like the others.
            objects.patch(TASKS, body["metadata"]["name"], task_spec_patch(body), _JSON_PATCH)
    for body in changes.replace:
        objects.patch(TASKS, body["metadata"]["name"], task_spec_patch(body), _JSON_PATCH)


def remove_tasks(objects: _Objects, changes: TaskChanges) -> None:
    for name in changes.delete:
        _call_unless(_NOT_FOUND, objects.delete, TASKS, name)


def register_schedules(objects: _Objects, changes: ScheduleChanges) -> None:
    from kubernetes.client.exceptions import ApiException

    for body in changes.create:
        if not _call_unless(_ALREADY_EXISTS, objects.create, TASK_SCHEDULES, body):
            # Created meanwhile (by a concurrent registration): brought to this declaration.
            existing = {
                body["metadata"]["name"]: objects.get(TASK_SCHEDULES, body["metadata"]["name"])
            }
            update = schedule_changes(existing, [body]).update
            for name, patch in update:
                objects.patch(TASK_SCHEDULES, name, patch, _MERGE_PATCH)
    for name, patch in changes.update:
        objects.patch(TASK_SCHEDULES, name, patch, _MERGE_PATCH)
    for name, uid in changes.delete:
        # Pinned to the object read: one made again meanwhile under that name stays (409).
        try:
            objects.delete(TASK_SCHEDULES, name, {"uid": uid} if uid else None)
        except ApiException as exc:
            if exc.status not in (_NOT_FOUND, _ALREADY_EXISTS):
                raise


def remove_stale_queues(objects: _Objects, queues: Sequence[QueueRef]) -> None:
    from kubernetes.client.exceptions import ApiException

    current = objects.list(TASK_QUEUES)
    declared = {queue.name for queue in queues}
    # Only a queue name can label runs (a longer name was never a declared queue's).
    candidates = {name for name in current if name not in declared and is_valid_queue_name(name)}
    if not candidates:
        return
    stale = stale_queues(
        {name: current[name] for name in candidates}, declared, objects.queues_in_use(candidates)
    )
    for name in stale:
        metadata = current[name]["metadata"]
        # Pinned to the queue as read: one declared or changed meanwhile stays (409).
        pinned = {"uid": metadata["uid"], "resource_version": metadata["resourceVersion"]}
        try:
            objects.delete(TASK_QUEUES, name, pinned)
        except ApiException as exc:
            if exc.status not in (_NOT_FOUND, _ALREADY_EXISTS):
                raise


def register_manifest(
    api_client: Any, namespace: str, tasks: Sequence[dict[str, Any]], queues: Sequence[QueueRef]
) -> None:
    """Make `namespace`'s `Task` objects exactly `tasks` (see `task_resources`), give each
    of `queues` its `TaskQueue`, make the DECLARATIVE `TaskSchedule`s exactly the tasks'
    schedules, and delete the `TaskQueue`s no longer needed (`stale_queues`).

    A declared schedule named like an IMPERATIVE one raises `ScheduleNameTaken` before
    anything changes. Queues go first, so that a new task's queue exists by the time the
    task can be triggered; then the tasks, their schedules (a schedule's task exists before
    it), the tasks no longer declared (once their schedules are gone) and the stale queues
    last, once no task uses them."""
    objects = _Objects(api_client, namespace)
    schedules = schedule_changes(objects.list(TASK_SCHEDULES), declared_schedules(tasks, namespace))
    register_queues(objects, queues)
    changes = task_changes(objects.list(TASKS), tasks)
    register_tasks(objects, changes)
    register_schedules(objects, schedules)
    # Last, once the new tasks exist: a trigger in between finds the old task, not none.
    remove_tasks(objects, changes)
    remove_stale_queues(objects, queues)
