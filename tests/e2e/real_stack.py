"""The cluster half of a `ComposedStack` on the real control plane.

`WatchedRealCluster` is a `RealCluster` of its own (control plane and one node agent, a
process a test can kill and start again: a node lost), and a watch of the namespace's pods
that reports each pod creation with the pods the watch held at that moment. The embedded
cluster calls its observers inside the create, with its store as of that create; a watch
cannot, but its events come in resourceVersion order, so at a pod's ADDED event its view is
the namespace's pods exactly as of that create (behind the cluster, never out of order).

A control plane per stack, not the session's: each stack's operator owns the namespace
(its TaskRuns, quotas and pods), and a test here stops the node.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.real_cluster import RealCluster

VERSION = "v1alpha1"

CreationObserver = Callable[[dict[str, Any], list[dict[str, Any]]], None]


class PodCreations:
    """Follows the namespace's pods; calls `observer(pod, pods_then)` at each creation."""

    def __init__(self, kubeconfig: Path, namespace: str, observer: CreationObserver) -> None:
        self._kubeconfig = kubeconfig
        self._namespace = namespace
        self._observer = observer
        self._pods: dict[str, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True, name="pod-creations")
        self._api = config.new_client_from_config(config_file=str(kubeconfig))
        self._version = ""
        # Stretches of history the watch could not resume (410 Gone): creations in such a
        # gap are seen late, with the view of after it. A test without them expects 0.
        self.relists = 0

    def start(self) -> PodCreations:
        self._version = self._relist(observe=False)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self._api.close()

    def _relist(self, observe: bool) -> str:
        core = client.CoreV1Api(self._api)
        listed = json.loads(core.list_namespaced_pod(self._namespace, _preload_content=False).data)
        seen = set(self._pods)
        self._pods = {p["metadata"]["name"]: p for p in listed["items"]}
        if observe:
            for name, pod in self._pods.items():
                if name not in seen:
                    self._observer(pod, list(self._pods.values()))
        return str(listed["metadata"]["resourceVersion"])

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                stream = watch.Watch()
                for event in stream.stream(
                    client.CoreV1Api(self._api).list_namespaced_pod,
                    self._namespace,
                    resource_version=self._version,
                    timeout_seconds=10,
                ):
                    self._see(event["type"], event["raw_object"])
                    if self._stop.is_set():
                        return
            except ApiException as exc:
                if exc.status == 410:
                    self.relists += 1
                    self._version = self._relist(observe=True)
                else:
                    time.sleep(0.2)
            except (urllib3.exceptions.HTTPError, OSError, ValueError):
                time.sleep(0.2)

    def _see(self, kind: str, pod: dict[str, Any]) -> None:
        self._version = pod["metadata"]["resourceVersion"]
        name = pod["metadata"]["name"]
        if kind == "DELETED":
            self._pods.pop(name, None)
            return
        created = kind == "ADDED" and name not in self._pods
        self._pods[name] = pod
        if created:
            self._observer(pod, list(self._pods.values()))


class WatchedRealCluster(RealCluster):
    """A control plane, its one node agent, and the pod creations a test observes."""

    def __init__(
        self,
        state: Path,
        workdir: Path,
        *,
        node_env: Mapping[str, str] | None = None,
        component_args: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__(state, workdir, node_env=node_env, component_args=component_args)
        self._observers: list[CreationObserver] = []
        self._creations: PodCreations | None = None
        self._api: client.ApiClient | None = None

    def start(self) -> WatchedRealCluster:
        super().start()
        self._api = config.new_client_from_config(config_file=str(self.kubeconfig_path))
        self._creations = PodCreations(self.kubeconfig_path, "default", self._created).start()
        return self

    def stop(self) -> None:
        if self._creations is not None:
            self._creations.stop()
        if self._api is not None:
            self._api.close()
        super().stop()

    # --- reading ----------------------------------------------------------------------

    def objects(
        self, plural: str, *, group: str = "", namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """The objects of one resource, as the apiserver lists them now."""
        assert namespace is not None, "a namespace, please"
        if not group:
            core = client.CoreV1Api(self._api)
            call = getattr(core, f"list_namespaced_{_singular(plural)}")
            listed = self._read(call, namespace)
        else:
            custom = client.CustomObjectsApi(self._api)
            listed = self._read(
                custom.list_namespaced_custom_object, group, VERSION, namespace, plural
            )
        return list(listed["items"])

    @staticmethod
    def _read(call: Callable[..., Any], *args: Any) -> dict[str, Any]:
        return json.loads(call(*args, _preload_content=False).data)  # type: ignore[no-any-return]

    # --- observing --------------------------------------------------------------------

    def add_create_observer(self, observer: CreationObserver) -> None:
        """`observer(pod, pods_then)` at each pod creation, on the watch's thread."""
        self._observers.append(observer)

    def _created(self, pod: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        for observer in list(self._observers):
            observer(pod, pods)

    @property
    def watch_gaps(self) -> int:
        return 0 if self._creations is None else self._creations.relists


def _singular(plural: str) -> str:
    return {
        "pods": "pod",
        "secrets": "secret",
        "events": "event",
        "resourcequotas": "resource_quota",
    }[plural]
