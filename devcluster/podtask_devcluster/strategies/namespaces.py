"""Namespaces' registry strategy and lifecycle: names as RFC 1123 labels, the
`kubernetes.io/metadata.name` label, the `kubernetes` finalizer and an Active phase, the
namespaces every cluster starts with (the first three never deleted), and what goes with a
namespace: its objects (its pods gracefully, through their kubelet, as the namespace
controller deletes them)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from podtask_devcluster import errors, object_meta
from podtask_devcluster.discovery import ResourceType
from podtask_devcluster.podstatus import now_rfc3339
from podtask_devcluster.request_options import DeleteOptions
from podtask_devcluster.store import JsonObject, storage_key
from podtask_devcluster.strategies.base import Strategy
from podtask_devcluster.strategies.pods import PODS

if TYPE_CHECKING:
    from podtask_devcluster.registry import Registry

NAMESPACES = storage_key("", "namespaces")
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")


class NamespaceStrategy(Strategy):
    def bootstrap(self, registry: Registry) -> None:
        for name in INITIAL_NAMESPACES:
            if registry.store.get(NAMESPACES, "", name) is None:
                registry.store.put(NAMESPACES, _new_namespace(name))

    def validate_name(self, resource: ResourceType, name: str) -> None:
        object_meta.validate_label_name(resource, name)

    def prepare_for_create(self, resource: ResourceType, obj: JsonObject) -> None:
        name = obj["metadata"]["name"]
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}

    def check_delete(self, resource: ResourceType, obj: JsonObject) -> None:
        name = obj["metadata"]["name"]
        if name in PROTECTED_NAMESPACES:
            raise errors.StatusError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                name=name,
                kind="namespaces",
            )

    def before_remove(self, registry: Registry, obj: JsonObject) -> None:
        namespace = obj["metadata"]["name"]
        for key, contained in list(registry.store.namespaced_objects(namespace)):
            if key == PODS:
                # As the namespace controller deletes them: gracefully, through the kubelet.
                registry.delete_stored(key, contained, DeleteOptions())
                continue
            registry.store.remove(key, namespace, contained["metadata"]["name"])


def _new_namespace(name: str) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": now_rfc3339(),
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }
