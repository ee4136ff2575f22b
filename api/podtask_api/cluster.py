"""The API's view of the cluster: read Tasks and TaskRuns, create and change runs, record reports;
list runs a page at a time, read and change TaskQueues, read attempt pods and their logs.

`KubernetesCluster` does it with the official (synchronous) client, so the
routes call it in a thread. Its errors are translated here into the few
outcomes the routes distinguish.

What the API's service account needs in its namespace: tasks (get, list, watch), taskqueues
(get, list, patch), taskruns (get, list, watch, create, patch, delete; status: patch), and
pods (get) with pods/log (get) for `GET /api/v1/runs/{id}/logs`, configmaps (get,
list, create, patch, delete) for batch markers and the stored copies of attempts' logs, and
taskschedules (get, list, create, patch, delete) for `/api/v1/schedules`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from podtask._contract import wire
from podtask._contract.status_patches import status_set
from podtask_api.metrics import count_kube_requests
from podtask_api.reports import report_writes

T = TypeVar("T")

# How errors name the objects of each resource.
_KINDS = {
    wire.TASKS: wire.TASK_KIND,
    wire.TASK_RUNS: wire.TASK_RUN_KIND,
    wire.TASK_QUEUES: wire.TASK_QUEUE_KIND,
    wire.TASK_SCHEDULES: wire.TASK_SCHEDULE_KIND,
}

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"

# Objects per page when the API reads a whole list (a key's runs, the tasks, the queues).
_LIST_CHUNK = 500
# Bytes per read of a followed log: small enough that lines show up as they are written.
_LOG_CHUNK = 4096
# Seconds a followed log may be silent before the API closes it (the client may follow again).
FOLLOW_IDLE_SECONDS = 300

# Seconds: connect, then read. A hung cluster becomes a 503, not a hung request.
REQUEST_TIMEOUT = (5, 30)

# Connections kept to the Kubernetes API: at least as many as a batch trigger uses at once.
CONNECTION_POOL_SIZE = 32


class ClusterError(Exception):
    """The cluster did not do what was asked; `str()` is safe to show to callers."""


class ObjectNotFound(ClusterError):
    pass


class ObjectAlreadyExists(ClusterError):
    pass


class ResourceNotInstalled(ClusterError):
    """The resource type or the namespace does not exist (CRDs not installed?)."""


class ObjectRejected(ClusterError):
    """The cluster refused the object as invalid (a 400 or 422 from Kubernetes)."""


class AttemptNotCurrent(ClusterError):
    """The run's attempt moved between the read a report was checked against and its write.

    `run` is the run as read again after the refused write.
    """

    def __init__(self, message: str, run: dict[str, Any]) -> None:
        super().__init__(message)
        self.run = run


class PhaseChanged(ClusterError):
    """The run's phase moved between the read a change was checked against and its write.

    `run` is the run as read again after the refused write.
    """

    def __init__(self, message: str, run: dict[str, Any]) -> None:
        super().__init__(message)
        self.run = run


class ListExpired(ClusterError):
    """A continue token of a list too old for the cluster to go on from (Kubernetes' 410)."""


class ClusterUnavailable(ClusterError):
    """The cluster could not be reached or failed; `status` is what the API answers."""

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(message)
        self.status = status


def _status_body(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    try:
        parsed = json.loads(body) if isinstance(body, str) else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def translate_api_error(
    status: int | None, body: Any, *, kind: str, name: str | None
) -> ClusterError:
    """A Kubernetes API error as one of the outcomes the routes tell apart."""
    parsed = _status_body(body)
    message = str(parsed.get("message") or f"HTTP {status}")
    details = parsed.get("details") or {}
    if status == 404:
        about_other = bool(details.get("name")) and details.get("name") != name
        if name is None or about_other or "could not find the requested resource" in message:
            return ResourceNotInstalled(
                f"the cluster has no {kind} resource here ({message}); "
                "are the podtask CRDs installed and the namespace created?"
            )
        return ObjectNotFound(message)
    if status == 409:
        return ObjectAlreadyExists(message)
    if status == 410:
        return ListExpired(message)
    if status in (400, 422):
        return ObjectRejected(message)
    if status in (401, 403):
        return ClusterUnavailable(
            f"the API is not allowed to use {kind} objects in the cluster: {message}", 502
        )
    if status is not None and (status >= 500 or status == 429):
        return ClusterUnavailable(f"the Kubernetes API failed: {message}", 503)
    return ClusterUnavailable(f"the Kubernetes API answered {status}: {message}", 502)


def kube_call(kind: str, subject: str | None, operation: Callable[[], T]) -> T:
    """Make one call of the Kubernetes client; its failures raise as the `ClusterError`s above."""
    try:
        return operation()
    except ApiException as exc:
        raise translate_api_error(exc.status, exc.body, kind=kind, name=subject) from exc
    except HTTPError as exc:
        raise ClusterUnavailable(
            f"the Kubernetes API cannot be reached: {type(exc).__name__}"
        ) from exc


class KubernetesCluster:
    """Tasks and TaskRuns in one namespace of a Kubernetes API; every method may block."""

    def __init__(self, namespace: str, api_client: Any) -> None:
        self.namespace = namespace
        # Shared (one connection pool) with what reads the keys' Secret and records deployments.
        self.api_client = api_client
        self._api = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)

    @classmethod
    def connect(cls, namespace: str, kubeconfig: str | None = None) -> KubernetesCluster:
        """Load `kubeconfig`, else in-cluster config inside a pod, else KUBECONFIG/~/.kube."""
        configuration = client.Configuration()
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration, persist_config=False
            )
        # A batch trigger creates runs from several threads at once; without room in the pool
        # urllib3 would open a connection per create and throw it away afterwards.
        configuration.connection_pool_maxsize = max(
            configuration.connection_pool_maxsize, CONNECTION_POOL_SIZE
        )
        return cls(namespace, count_kube_requests(client.ApiClient(configuration)))

    def _call(self, kind: str, subject: str | None, method: Any, **kwargs: Any) -> dict[str, Any]:
        """One call of the custom objects API (podtask's resources) in this namespace."""
        result = self._request(
            kind,
            subject,
            method,
            group=wire.GROUP,
            version=wire.VERSION,
            namespace=self.namespace,
            **kwargs,
        )
        if not isinstance(result, dict):
            raise ClusterUnavailable(
                "the Kubernetes API answered with something not an object", 502
            )
        return result

    def _request(self, kind: str, subject: str | None, method: Any, **kwargs: Any) -> Any:
        timeout = kwargs.pop("_request_timeout", REQUEST_TIMEOUT)
        return kube_call(kind, subject, lambda: method(_request_timeout=timeout, **kwargs))

    def _core_object(
        self, kind: str, subject: str | None, method: Any, **kwargs: Any
    ) -> dict[str, Any]:
        """One call of the core API in this namespace, its answer read as JSON (an object)."""
        raw = self._request(
            kind, subject, method, namespace=self.namespace, _preload_content=False, **kwargs
        )
        return _json_object(raw)

    def _on(self, plural: str, name: str | None, method: Any, **kwargs: Any) -> dict[str, Any]:
        """`method` of the custom objects API on the objects of `plural`, or the one `name`."""
        named = {} if name is None else {"name": name}
        return self._call(_KINDS[plural], name, method, plural=plural, **named, **kwargs)

    def _get(self, plural: str, name: str) -> dict[str, Any]:
        return self._on(plural, name, self._api.get_namespaced_custom_object)

    def _merge_patch(self, plural: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        method = self._api.patch_namespaced_custom_object
        return self._on(plural, name, method, body=patch, _content_type=MERGE_PATCH)

    def _list(
        self, plural: str, label_selector: str | None, limit: int, token: str | None
    ) -> dict[str, Any]:
        method = self._api.list_namespaced_custom_object
        return self._on(
            plural, None, method, label_selector=label_selector, limit=limit, _continue=token
        )

    def _list_all(self, plural: str, label_selector: str | None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = self._list(plural, label_selector, _LIST_CHUNK, token)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or None
            if token is None:
                return items

    def list_runs(
        self, label_selector: str | None, limit: int, continue_token: str | None
    ) -> dict[str, Any]:
        """One page of TaskRuns, in name order: `items`, and `metadata.continue` if more.

        Raises `ListExpired` when `continue_token` is too old, and `ObjectRejected` when the
        cluster does not take it.
        """
        return self._list(wire.TASK_RUNS, label_selector, limit, continue_token)

    def runs_version(self) -> str:
        """The TaskRuns' current resourceVersion: a watch from it sees every later change."""
        listed = self.list_runs(None, 1, None)
        return str((listed.get("metadata") or {}).get("resourceVersion") or "")

    def watch_runs(self, resource_version: str, timeout_seconds: int) -> Any:
        """Open a watch of TaskRuns from `resource_version`, which the cluster ends after
        `timeout_seconds`: the response, whose lines are the watch's events (the caller reads
        it in the thread that opened it, and releases it). Bookmarks keep its version fresh."""
        return self._watch(wire.TASK_RUNS, resource_version, timeout_seconds)

    def watch_tasks(self, resource_version: str, timeout_seconds: int) -> Any:
        """Open a watch of Tasks from `resource_version` (as `watch_runs`)."""
        return self._watch(wire.TASKS, resource_version, timeout_seconds)

    def _watch(self, plural: str, resource_version: str, timeout_seconds: int) -> Any:
        return self._request(
            _KINDS[plural],
            None,
            self._api.list_namespaced_custom_object,
            group=wire.GROUP,
            version=wire.VERSION,
            namespace=self.namespace,
            plural=plural,
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
            # Past the cluster's own end of the watch, silence means the connection is dead.
            _request_timeout=(REQUEST_TIMEOUT[0], timeout_seconds + REQUEST_TIMEOUT[1]),
        )

    def list_all_runs(self, label_selector: str) -> list[dict[str, Any]]:
        """Every TaskRun with these labels (meant for selectors that match few)."""
        return self._list_all(wire.TASK_RUNS, label_selector)

    def list_tasks(self) -> list[dict[str, Any]]:
        return self._list_all(wire.TASKS, None)

    def list_tasks_at_version(self) -> tuple[list[dict[str, Any]], str]:
        """Every Task, and the resourceVersion of the list: a watch from it sees every later
        change. One page: a namespace holds at most a few hundred Tasks."""
        listed = self._on(wire.TASKS, None, self._api.list_namespaced_custom_object)
        version = str((listed.get("metadata") or {}).get("resourceVersion") or "")
        return list(listed.get("items") or []), version

    def list_queues(self) -> list[dict[str, Any]]:
        return self._list_all(wire.TASK_QUEUES, None)

    def get_queue(self, name: str) -> dict[str, Any]:
        return self._get(wire.TASK_QUEUES, name)

    def merge_patch_queue(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge `patch` into the TaskQueue `name` (its spec; the operator acts on it at once)."""
        return self._merge_patch(wire.TASK_QUEUES, name, patch)

    def get_schedule(self, name: str) -> dict[str, Any]:
        return self._get(wire.TASK_SCHEDULES, name)

    def list_schedules(
        self, label_selector: str | None, limit: int, continue_token: str | None
    ) -> dict[str, Any]:
        """One page of TaskSchedules, in name order (as `list_runs`)."""
        return self._list(wire.TASK_SCHEDULES, label_selector, limit, continue_token)

    def create_schedule(self, body: dict[str, Any]) -> dict[str, Any]:
        method = self._api.create_namespaced_custom_object
        return self._on(wire.TASK_SCHEDULES, None, method, body=body)

    def merge_patch_schedule(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge `patch` into the TaskSchedule `name` (its spec and labels; the operator acts
        on it at its next tick)."""
        return self._merge_patch(wire.TASK_SCHEDULES, name, patch)

    def delete_schedule(self, name: str, uid: str) -> None:
        """Delete the TaskSchedule `name` only if it is still the object read (`uid`)."""
        method = self._api.delete_namespaced_custom_object
        self._on(wire.TASK_SCHEDULES, name, method, body={"preconditions": {"uid": uid}})

    def get_pod(self, name: str) -> dict[str, Any]:
        pod = self._request(
            "Pod", name, self._core.read_namespaced_pod, name=name, namespace=self.namespace
        )
        found: dict[str, Any] = self._core.api_client.sanitize_for_serialization(pod)
        return found

    def list_events(self, involved_name: str) -> list[dict[str, Any]]:
        """The Events (core/v1) about the object named `involved_name` in this namespace."""
        listed = self._core_object(
            "Event",
            involved_name,
            self._core.list_namespaced_event,
            field_selector=f"involvedObject.name={involved_name}",
        )
        return list(listed.get("items") or [])

    def _pod_log(self, name: str, **kwargs: Any) -> Any:
        return self._request(
            "Pod",
            name,
            self._core.read_namespaced_pod_log,
            name=name,
            namespace=self.namespace,
            _preload_content=False,
            **kwargs,
        )

    def read_pod_log(self, name: str) -> bytes:
        """The log of the pod's (one) container so far."""
        response = self._pod_log(name)
        try:
            data: bytes = response.data
            return data
        finally:
            response.release_conn()

    def follow_pod_log(self, name: str) -> Iterator[bytes]:
        """The log of the pod's container: what it has, then what it writes until it ends.

        The request is made at once (its errors raise here); the iterator reads on.
        """
        response = self._pod_log(
            name, follow=True, _request_timeout=(REQUEST_TIMEOUT[0], FOLLOW_IDLE_SECONDS)
        )
        return _log_chunks(response)

    def get_task(self, name: str) -> dict[str, Any]:
        return self._get(wire.TASKS, name)

    def get_run(self, name: str) -> dict[str, Any]:
        return self._get(wire.TASK_RUNS, name)

    def create_run(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._on(wire.TASK_RUNS, None, self._api.create_namespaced_custom_object, body=body)

    def delete_run(self, name: str) -> None:
        self._on(wire.TASK_RUNS, name, self._api.delete_namespaced_custom_object)

    # --- ConfigMaps: batch markers (podtask._contract.batch_markers), attempts' logs ---

    def get_config_map(self, name: str) -> dict[str, Any]:
        return self._core_object(
            "ConfigMap", name, self._core.read_namespaced_config_map, name=name
        )

    def create_config_map(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._core_object(
            "ConfigMap", None, self._core.create_namespaced_config_map, body=body
        )

    def list_config_maps(self, label_selector: str) -> list[dict[str, Any]]:
        """Every ConfigMap with these labels (meant for selectors that match few)."""
        found = self._core_object(
            "ConfigMap", None, self._core.list_namespaced_config_map, label_selector=label_selector
        )
        return list(found.get("items") or [])

    def json_patch_config_map(self, name: str, patch: list[dict[str, Any]]) -> dict[str, Any]:
        """Apply a JSON patch; a failed `test` raises `ObjectRejected` (Kubernetes' 422)."""
        return self._core_object(
            "ConfigMap",
            name,
            self._core.patch_namespaced_config_map,
            name=name,
            body=patch,
            _content_type=JSON_PATCH,
        )

    def delete_config_map(self, name: str, uid: str, resource_version: str) -> None:
        """Delete it only as it was read (uid and version): a 409 when it changed since. Its
        dependents go after it (background propagation)."""
        self._request(
            "ConfigMap",
            name,
            self._core.delete_namespaced_config_map,
            name=name,
            namespace=self.namespace,
            body={
                "propagationPolicy": "Background",
                "preconditions": {"uid": uid, "resourceVersion": resource_version},
            },
            _preload_content=False,
        )

    def merge_patch_run(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge `patch` into the TaskRun `name` (its spec and metadata; never its status)."""
        return self._merge_patch(wire.TASK_RUNS, name, patch)

    def set_delay_until(self, run: dict[str, Any], delay_until: str) -> dict[str, Any]:
        """Set `spec.delayUntil` of `run`, only if its phase is still as in `run`; the result.

        Raises `PhaseChanged` (with the run read again) when the operator has moved the run
        on since it was read (a delayed run that has just been queued keeps its start).
        """
        write = {"op": "add", "path": "/spec/delayUntil", "value": delay_until}
        return self._guarded_patch(
            run,
            phase_guard,
            write,
            self._api.patch_namespaced_custom_object,
            lambda fresh: PhaseChanged(
                f"run {fresh['metadata']['name']!r} moved on while it was rescheduled", fresh
            ),
        )

    def record_report(self, run: dict[str, Any], report: dict[str, Any]) -> None:
        """Set `status.report` of `run` wholesale, only if its attempt is still as in `run`;
        a report of success completes the run in the same write (`reports.report_writes`).

        `run` is the object as the caller last read it and judged the report against.
        Raises `AttemptNotCurrent` (with the run read again) when the attempt has moved
        since, and `ObjectRejected` when the cluster refused the write for another reason.
        """
        self._guarded_patch(
            run,
            report_guard,
            report_writes(run, report, datetime.now(UTC)),
            self._api.patch_namespaced_custom_object_status,
            lambda fresh: AttemptNotCurrent(
                f"run {fresh['metadata']['name']!r} moved on while the report was written", fresh
            ),
        )

    def record_metadata(self, run: dict[str, Any], metadata: dict[str, Any]) -> None:
        """Set `status.metadata` of `run` wholesale, only if its attempt is still as in `run`
        (else `AttemptNotCurrent`, as `record_report`)."""
        self._guarded_patch(
            run,
            report_guard,
            status_set(run.get("status"), "metadata", metadata),
            self._api.patch_namespaced_custom_object_status,
            lambda fresh: AttemptNotCurrent(
                f"run {fresh['metadata']['name']!r} moved on while its metadata was written",
                fresh,
            ),
        )

    def write_wait(self, run: dict[str, Any], write: dict[str, Any]) -> dict[str, Any]:
        """Apply `write` (a JSON patch operation on `status.wait`) to `run`, only if nothing
        changed it since it was read; the run as written.

        Raises `AttemptNotCurrent` (with the run read again) when something did.
        """
        return self._guarded_patch(
            run,
            _version_guard,
            write,
            self._api.patch_namespaced_custom_object_status,
            lambda fresh: AttemptNotCurrent(
                f"run {fresh['metadata']['name']!r} changed while its wait was written", fresh
            ),
        )

    def _guarded_patch(
        self,
        run: dict[str, Any],
        guard_of: Callable[[dict[str, Any]], list[dict[str, Any]]],
        write: dict[str, Any] | list[dict[str, Any]],
        patch: Callable[..., Any],
        moved_on: Callable[[dict[str, Any]], ClusterError],
    ) -> dict[str, Any]:
        """Apply `write` (one JSON patch operation, or several) to `run` only while
        `guard_of(run)` still holds: a JSON patch whose `test` makes the check and the write
        one atomic step."""
        writes = write if isinstance(write, list) else [write]
        name = run["metadata"]["name"]
        guard = guard_of(run)
        try:
            return self._on(
                wire.TASK_RUNS, name, patch, body=[*guard, *writes], _content_type=JSON_PATCH
            )
        except ObjectRejected as exc:
            # Kubernetes answers a failed `test` with the same 422 as an invalid object; what
            # tells them apart is whether the guarded value has changed since.
            fresh = self.get_run(name)
            if guard_of(fresh) == guard:
                raise
            raise moved_on(fresh) from exc


def _json_object(response: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(response.data)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ClusterUnavailable("the Kubernetes API answered with something not an object", 502)
    return parsed


def _log_chunks(response: Any) -> Iterator[bytes]:
    try:
        yield from response.stream(_LOG_CHUNK, decode_content=True)
    except HTTPError:
        return  # the cluster closed the stream (or it stayed idle too long): the log ends here
    finally:
        response.release_conn()


def _version_guard(run: dict[str, Any]) -> list[dict[str, Any]]:
    # Before the operator first writes a field there is no value to test; the
    # resourceVersion pins the whole object instead (any write since fails the test).
    version = (run.get("metadata") or {}).get("resourceVersion")
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": version}]


def report_guard(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON-patch `test`s that hold while the run's attempt and phase are as in `run`.

    The phase too: the operator ends an attempt (retry or final phase) without moving the
    attempt number, and a report that lands after that end would be accepted yet ignored.
    """
    status = run.get("status")
    if isinstance(status, dict) and "attempt" in status:
        tests = [{"op": "test", "path": "/status/attempt", "value": status["attempt"]}]
        if "phase" in status:
            tests.append({"op": "test", "path": "/status/phase", "value": status["phase"]})
        return tests
    return _version_guard(run)


def phase_guard(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON-patch `test` that holds while the run's phase is as it was in `run`."""
    status = run.get("status")
    if isinstance(status, dict) and "phase" in status:
        return [{"op": "test", "path": "/status/phase", "value": status["phase"]}]
    return _version_guard(run)
