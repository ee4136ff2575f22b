"""Pods' registry strategy, as kube-apiserver's pod strategy: required containers, resource
quantities canonical and requests defaulted from limits, spec defaults, a Pending status with
its QoS class, graceful deletion through the kubelet, and the `pods/binding` subresource the
scheduler writes."""

from __future__ import annotations

import copy
import datetime as dt
from typing import TYPE_CHECKING, Any

from podtask_devcluster import errors
from podtask_devcluster.discovery import ResourceType
from podtask_devcluster.podstatus import now_rfc3339
from podtask_devcluster.quantities import canonical_quantity
from podtask_devcluster.request_options import DeleteOptions
from podtask_devcluster.store import JsonObject, storage_key
from podtask_devcluster.strategies.base import Strategy

if TYPE_CHECKING:
    from podtask_devcluster.registry import Registry

PODS = storage_key("", "pods")


class PodStrategy(Strategy):
    has_generation = True
    # The pod's own graceful deletion applies; propagation finalizers are not added.
    propagates_by_finalizer = False

    def prepare_for_create(self, resource: ResourceType, obj: JsonObject) -> None:
        _validate_pod(obj["metadata"]["name"], obj)
        spec = obj["spec"]
        _canonical_resources(spec)
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}

    def prepare_for_update(
        self, resource: ResourceType, updated: JsonObject, existing: JsonObject
    ) -> None:
        super().prepare_for_update(resource, updated, existing)
        _validate_pod(existing["metadata"]["name"], updated)

    def delete(
        self, registry: Registry, resource: ResourceType, obj: JsonObject, options: DeleteOptions
    ) -> JsonObject:
        """Graceful deletion as kube-apiserver does it (rest.BeforeDelete and the pod
        strategy's CheckGracefulDelete): a pod bound to a node and not finished gets a
        deletionTimestamp `grace` seconds ahead and stays until its kubelet, having stopped it,
        deletes it with gracePeriodSeconds=0; a later delete may only shorten the grace. A pod
        never bound, or finished, goes at once (unless finalizers hold it)."""
        meta = obj["metadata"]
        spec = obj.get("spec") or {}
        current = meta.get("deletionGracePeriodSeconds")
        if meta.get("deletionTimestamp") and current:
            grace = options.grace_period_seconds
            if grace is None or grace >= current:
                return obj  # graceful deletion pending: nothing to do
            terminating = copy.deepcopy(obj)
            if grace > 0:
                terminating["metadata"]["deletionTimestamp"] = _shifted(
                    str(meta["deletionTimestamp"]), grace - int(current)
                )
            terminating["metadata"]["deletionGracePeriodSeconds"] = max(grace, 0)
            if grace > 0 or meta.get("finalizers"):
                return registry.store.put(resource.storage_key, terminating)
            removed = copy.deepcopy(registry.remove(resource, obj))
            removed["metadata"]["deletionGracePeriodSeconds"] = 0
            return removed
        if meta.get("deletionTimestamp"):
            return obj if meta.get("finalizers") else registry.remove(resource, obj)
        grace = options.grace_period_seconds
        if grace is None:
            grace = int(spec.get("terminationGracePeriodSeconds") or 0)
        if not spec.get("nodeName") or (obj.get("status") or {}).get("phase") in (
            "Succeeded",
            "Failed",
        ):
            grace = 0
        if grace < 0:
            grace = 1
        terminating = copy.deepcopy(obj)
        terminating["metadata"]["deletionTimestamp"] = _rfc3339_after(grace)
        terminating["metadata"]["deletionGracePeriodSeconds"] = grace
        if grace > 0 or meta.get("finalizers"):
            return registry.store.put(resource.storage_key, terminating)
        # Deleted at once, and answered with the object as kube marks it on the way.
        removed = copy.deepcopy(registry.remove(resource, obj))
        removed["metadata"].update(
            {
                k: terminating["metadata"][k]
                for k in ("deletionTimestamp", "deletionGracePeriodSeconds")
            }
        )
        return removed


def bind(registry: Registry, namespace: str, name: str, binding: Any) -> JsonObject:
    """`pods/binding` (what kube-scheduler writes): the pod's node, the binding's
    annotations and PodScheduled=True. 409 if the pod is bound already."""
    if not isinstance(binding, dict) or not isinstance(binding.get("target"), dict):
        raise errors.bad_request("a Binding needs a target")
    target = binding["target"]
    node = target.get("name")
    if not node or target.get("kind", "Node") != "Node":
        raise errors.invalid("", "Binding", name, "target.name", "Required value")
    resource = registry.catalog.by_storage_key(PODS)
    assert resource is not None
    pod = registry.get(resource, namespace, name)
    meta = pod["metadata"]
    uid = ((binding.get("metadata") or {}).get("uid")) or None
    if uid is not None and uid != meta.get("uid"):
        raise errors.conflict(
            "",
            "pods/binding",
            name,
            f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
            f"{meta.get('uid')}",
        )
    if meta.get("deletionTimestamp"):
        raise errors.conflict(
            "",
            "pods/binding",
            name,
            f"pod {name} is being deleted, cannot be assigned to a host",
        )
    if (pod.get("spec") or {}).get("nodeName"):
        raise errors.conflict(
            "",
            "pods/binding",
            name,
            f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"',
        )
    bound = copy.deepcopy(pod)
    bound["spec"]["nodeName"] = node
    annotations = (binding.get("metadata") or {}).get("annotations") or {}
    if annotations:
        bound["metadata"].setdefault("annotations", {}).update(annotations)
    status = bound.setdefault("status", {})
    others = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    status["conditions"] = [
        *others,
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": now_rfc3339(),
        },
    ]
    return registry.store.put(PODS, bound)


def _validate_pod(name: str, pod: JsonObject) -> None:
    containers = (pod.get("spec") or {}).get("containers")
    if not isinstance(containers, list) or not containers:
        raise errors.invalid("", "Pod", name, "spec.containers", "Required value")
    for index, container in enumerate(containers):
        if not isinstance(container, dict) or not container.get("name"):
            raise errors.invalid(
                "", "Pod", name, f"spec.containers[{index}].name", "Required value"
            )
        if not container.get("image"):
            raise errors.invalid(
                "", "Pod", name, f"spec.containers[{index}].image", "Required value"
            )


def _canonical_resources(spec: JsonObject) -> None:
    """Resource quantities as kube-apiserver stores them (it decodes each into a Quantity
    and writes it back canonical), requests defaulted from limits; one that is not a quantity
    is refused as kube refuses it while decoding."""
    for field in ("containers", "initContainers"):
        for container in spec.get(field) or []:
            if not isinstance(container, dict):
                continue
            resources = container.get("resources") or {}
            limits = resources.get("limits")
            if isinstance(limits, dict) and limits:
                # SetDefaults_Pod: a limit without a request is also the request.
                requests = resources.setdefault("requests", {})
                if isinstance(requests, dict):
                    for key, value in limits.items():
                        requests.setdefault(key, value)
            for part in ("limits", "requests"):
                values = resources.get(part)
                if not isinstance(values, dict):
                    continue
                for key, value in values.items():
                    try:
                        values[key] = canonical_quantity(value)
                    except ValueError as error:
                        raise errors.bad_request(
                            'Pod in version "v1" cannot be handled as a Pod: quantities must '
                            "match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
                        ) from error


def _qos_class(spec: JsonObject) -> str:
    containers = spec.get("containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(kind) is not None
        and (r.get("requests") or {}).get(kind, (r.get("limits") or {}).get(kind))
        == (r.get("limits") or {}).get(kind)
        for r in resources
        for kind in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _rfc3339_after(seconds: int) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _shifted(timestamp: str, seconds: int) -> str:
    moment = dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return (moment + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
