"""The operator's thin Kubernetes layer: the few calls it makes, in threads, with retries.

The official client is synchronous, so every call runs on a thread pool and the
event loop never blocks. Transient failures (connection errors, 429, 5xx) are
retried with a short backoff; everything else surfaces to the caller.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from podtask.resources import GROUP, VERSION

log = logging.getLogger(__name__)

T = TypeVar("T")
_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
_ATTEMPTS = 5
_WORKERS = 32


def load_api_client() -> kubernetes.client.ApiClient:
    """A client from the in-cluster service account, else from KUBECONFIG."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = _WORKERS
    return kubernetes.client.ApiClient(configuration)


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, ApiException):
        return exc.status in _TRANSIENT_STATUS
    return isinstance(exc, urllib3.exceptions.HTTPError | ConnectionError)


def _json(response: Any) -> dict[str, Any]:
    return json.loads(response.data)  # type: ignore[no-any-return]


class RunChanged(Exception):
    """A TaskRun was written by someone else between the read a decision came from and the
    write of that decision (Kubernetes' 409 on a stale resourceVersion)."""


class Cluster:
    """Pods and TaskRuns of one namespace."""

    def __init__(self, api_client: kubernetes.client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self._core = kubernetes.client.CoreV1Api(api_client)
        self._custom = kubernetes.client.CustomObjectsApi(api_client)
        self._pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="kube")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _call(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        delay = 0.1
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return await loop.run_in_executor(self._pool, fn)
            except Exception as exc:
                if attempt == _ATTEMPTS or not _is_transient(exc):
                    raise
                log.warning("transient Kubernetes API error (try %d): %s", attempt, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    async def _get_or_none(self, fn: Callable[[], Any]) -> dict[str, Any] | None:
        try:
            return _json(await self._call(fn))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def get_run(self, name: str) -> dict[str, Any] | None:
        return await self._get_or_none(
            lambda: self._custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "taskruns", name, _preload_content=False
            )
        )

    async def get_config_map(self, name: str) -> dict[str, Any] | None:
        """A batch's marker (see podtask.batch_markers); None when there is none."""
        return await self._get_or_none(
            lambda: self._core.read_namespaced_config_map(
                name, self.namespace, _preload_content=False
            )
        )

    async def patch_run_status(
        self, name: str, patch: dict[str, Any], *, resource_version: str | None = None
    ) -> None:
        """Merge `patch` into the run's status; with `resource_version`, only into that version
        of the run (else `RunChanged`), so that a decision never overwrites what it did not see.
        """
        body: dict[str, Any] = {"status": patch}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            await self._call(
                lambda: self._custom.patch_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    self.namespace,
                    "taskruns",
                    name,
                    body,
                    _preload_content=False,
                )
            )
        except ApiException as exc:
            if exc.status == 409 and resource_version is not None:
                raise RunChanged(f"run {name} changed since version {resource_version}") from exc
            raise

    async def get_pod(self, name: str) -> dict[str, Any] | None:
        return await self._get_or_none(
            lambda: self._core.read_namespaced_pod(name, self.namespace, _preload_content=False)
        )

    async def create_pod(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create the pod; when it exists already (a retried create), return the existing one."""
        try:
            return _json(
                await self._call(
                    lambda: self._core.create_namespaced_pod(
                        self.namespace,
                        body,  # type: ignore[arg-type]
                        _preload_content=False,
                    )
                )
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing = await self.get_pod(body["metadata"]["name"])
        if existing is None:
            raise RuntimeError(f"pod {body['metadata']['name']} conflicts but cannot be read")
        return existing

    async def create_secret(self, body: dict[str, Any]) -> None:
        """Create the Secret; when it exists already (a retried create) it is the one to use:
        its name is deterministic and nothing ever changes it."""
        try:
            await self._call(
                lambda: self._core.create_namespaced_secret(
                    self.namespace,
                    body,  # type: ignore[arg-type]
                    _preload_content=False,
                )
            )
        except ApiException as exc:
            if exc.status != 409:
                raise

    async def _list(self, fn: Callable[[], Any]) -> list[dict[str, Any]]:
        return list(_json(await self._call(fn)).get("items", []))

    async def list_runs(self) -> list[dict[str, Any]]:
        return await self._list(
            lambda: self._custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "taskruns", _preload_content=False
            )
        )

    async def list_queues(self) -> list[dict[str, Any]]:
        return await self._list(
            lambda: self._custom.list_namespaced_custom_object(
                GROUP, VERSION, self.namespace, "taskqueues", _preload_content=False
            )
        )

    async def list_pods(self, label_selector: str) -> list[dict[str, Any]]:
        return await self._list(
            lambda: self._core.list_namespaced_pod(
                self.namespace, label_selector=label_selector, _preload_content=False
            )
        )

    async def delete_pod(self, name: str) -> None:
        """Delete gracefully (the runner gets SIGTERM and runs cleanup); gone already is fine."""
        try:
            await self._call(
                lambda: self._core.delete_namespaced_pod(
                    name, self.namespace, _preload_content=False
                )
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def patch_queue_status(self, name: str, status: dict[str, Any]) -> bool:
        """False when the TaskQueue does not exist."""
        try:
            await self._call(
                lambda: self._custom.patch_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    self.namespace,
                    "taskqueues",
                    name,
                    {"status": status},
                    _preload_content=False,
                )
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def post_event(
        self, run: dict[str, Any], type_: str, reason: str, message: str, now: datetime
    ) -> None:
        """A Kubernetes Event on the TaskRun: `kubectl describe taskrun` shows why."""
        meta = run["metadata"]
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "TaskRun",
                "name": meta["name"],
                "namespace": self.namespace,
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "podtask-operator"},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self._call(
                lambda: self._core.create_namespaced_event(
                    self.namespace,
                    body,  # type: ignore[arg-type]
                    _preload_content=False,
                )
            )
        except ApiException as exc:
            # An Event is an explanation, not state: never let it fail a run's reconcile.
            log.warning("could not post event %s on %s: %s", reason, meta["name"], exc.reason)
