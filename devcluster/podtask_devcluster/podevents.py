"""Events as a kubelet posts them (core/v1, source component `kubelet`, host = the node):
about a container of a pod (`involvedObject.fieldPath` = `spec.containers{name}`) or about
the Node. Pure."""

from __future__ import annotations

import secrets

from podtask_devcluster.nodestatus import rfc3339
from podtask_devcluster.store import JsonObject

NORMAL = "Normal"
WARNING = "Warning"


def pod_event(
    pod: JsonObject,
    node: str,
    reason: str,
    message: str,
    *,
    kind: str = NORMAL,
    container: str | None = None,
) -> JsonObject:
    meta = pod["metadata"]
    involved: JsonObject = {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": meta.get("namespace", "default"),
        "name": meta["name"],
        "uid": meta.get("uid", ""),
    }
    if meta.get("resourceVersion"):
        involved["resourceVersion"] = meta["resourceVersion"]
    if container is not None:
        involved["fieldPath"] = f"spec.containers{{{container}}}"
    return _event(str(involved["namespace"]), involved, node, reason, message, kind)


def node_event(node: str, reason: str, message: str, *, kind: str = NORMAL) -> JsonObject:
    # A kubelet names its Node by name as the UID of the reference.
    involved: JsonObject = {"kind": "Node", "name": node, "uid": node}
    return _event("default", involved, node, reason, message, kind)


def _event(
    namespace: str, involved: JsonObject, node: str, reason: str, message: str, kind: str
) -> JsonObject:
    now = rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{involved['name']}.{secrets.token_hex(8)}",
            "namespace": namespace,
        },
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": "kubelet", "host": node},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": "kubelet",
        "reportingInstance": node,
    }
