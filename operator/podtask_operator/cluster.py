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

    async def patch_run_status(self, name: str, patch: dict[str, Any]) -> None:
        await self._call(
            lambda: self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                self.namespace,
                "taskruns",
                name,
                {"status": patch},
                _preload_content=False,
            )
        )

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
