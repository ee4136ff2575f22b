"""Events as a kubelet posts them (core/v1, source component `kubelet`, host = the node):
about a container of a pod (`involvedObject.fieldPath` = `spec.containers{name}`), posted by
`PodEvents`, or about the Node (`node_event`, the body alone)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from podtask_devcluster.kubeapi import ApiError, KubeApi
from podtask_devcluster.nodestatus import rfc3339
from podtask_devcluster.store import JsonObject

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"
# The reasons this kubelet posts as Warnings (a container that failed, a process the kernel
# killed); every other one it posts (Pulled, Created, Started, Killing, ...) is Normal, and
# BackOff is Normal for an image pull, a Warning for a container's restart.
WARNING_REASONS = frozenset({"Failed", "OOMKilling"})


@dataclass(frozen=True)
class PodEvents:
    """The Events node `node`'s kubelet posts about its pods. Like a kubelet's event recorder,
    a post that fails is logged and dropped: an Event never stops a pod."""

    api: KubeApi
    node: str

    async def post(
        self,
        pod: JsonObject,
        reason: str,
        message: str,
        *,
        container: str | None = None,
        event_type: str | None = None,
    ) -> None:
        """Post the Event; its type is `event_type`, else told by its reason (a reason a
        kubelet posts both ways, BackOff, is Normal unless said)."""
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
        namespace = str(involved["namespace"])
        body = _event(namespace, involved, self.node, reason, message)
        if event_type is not None:
            body["type"] = event_type
        try:
            await self.api.create(f"/api/v1/namespaces/{namespace}/events", body)
        except (ApiError, OSError) as error:
            log.warning("event %s on %s not posted: %s", reason, meta["name"], error)


def node_event(node: str, reason: str, message: str) -> JsonObject:
    # A kubelet names its Node by name as the UID of the reference.
    involved: JsonObject = {"kind": "Node", "name": node, "uid": node}
    return _event("default", involved, node, reason, message)


def _event(
    namespace: str, involved: JsonObject, node: str, reason: str, message: str
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
        "type": WARNING if reason in WARNING_REASONS else NORMAL,
        "source": {"component": "kubelet", "host": node},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": "kubelet",
        "reportingInstance": node,
    }
