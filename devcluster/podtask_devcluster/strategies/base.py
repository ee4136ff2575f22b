"""`Strategy`: what one kind may add to the registry's generic create, update and delete, as
kube-apiserver's `rest.RESTCreateStrategy`, `RESTUpdateStrategy` and `RESTDeleteStrategy` do
(PrepareForCreate, Validate, PrepareForUpdate, ValidateUpdate, graceful deletion). The base
class is the default strategy: what a built-in kind with no rules of its own gets (config
maps, events, leases, services, RBAC objects, ...)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, ClassVar

from podtask_devcluster import object_meta
from podtask_devcluster.custom_resources import FieldValidation
from podtask_devcluster.discovery import ResourceType
from podtask_devcluster.podstatus import now_rfc3339
from podtask_devcluster.request_options import DeleteOptions
from podtask_devcluster.store import JsonObject

if TYPE_CHECKING:
    from podtask_devcluster.registry import Registry


class Strategy:
    # Kinds whose strategy keeps metadata.generation, bumped when the spec changes.
    has_generation: ClassVar[bool] = False
    # False where kube refuses an update without metadata.resourceVersion.
    allows_unconditional_update: ClassVar[bool] = True
    # Orphan/Foreground propagation finished by the garbage collector through a finalizer.
    propagates_by_finalizer: ClassVar[bool] = True

    def bootstrap(self, registry: Registry) -> None:
        """What the kind needs in a store the registry starts on."""

    def validate_name(self, resource: ResourceType, name: str) -> None:
        object_meta.validate_subdomain_name(resource, name)

    def decode(self, resource: ResourceType, obj: JsonObject, validation: FieldValidation) -> None:
        """Decoding a body (create, update, patch result): pruning and defaulting."""

    def prepare_for_create(self, resource: ResourceType, obj: JsonObject) -> None:
        """Canonicalize and default a new object; a status subresource starts empty."""
        if resource.status_subresource:
            obj.pop("status", None)

    def validate(self, resource: ResourceType, obj: JsonObject) -> None:
        """The new object, prepared, against the kind's rules."""

    def after_create(self, registry: Registry, stored: JsonObject) -> None:
        """What a stored new object sets off in the server (a CRD serves its resources)."""

    def prepare_for_update(
        self, resource: ResourceType, updated: JsonObject, existing: JsonObject
    ) -> None:
        """A main-resource write: the status subresource's part stays as stored."""
        if resource.status_subresource:
            keep_status(updated, existing)

    def validate_update(
        self, resource: ResourceType, obj: JsonObject, old: JsonObject, subresource: str | None
    ) -> None:
        """The updated object (main resource or /status) against the kind's rules."""

    def after_update(self, registry: Registry, stored: JsonObject) -> None:
        """What a stored update sets off in the server."""

    def check_delete(self, resource: ResourceType, obj: JsonObject) -> None:
        """Refuse a delete the kind never allows."""

    def delete(
        self, registry: Registry, resource: ResourceType, obj: JsonObject, options: DeleteOptions
    ) -> JsonObject:
        """No grace period: finalizers hold the object, marked terminating; else it goes."""
        meta = obj["metadata"]
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return obj
            terminating = copy.deepcopy(obj)
            terminating["metadata"]["deletionTimestamp"] = now_rfc3339()
            terminating["metadata"]["deletionGracePeriodSeconds"] = 0
            return registry.store.put(resource.storage_key, terminating)
        return registry.remove(resource, obj)

    def before_remove(self, registry: Registry, obj: JsonObject) -> None:
        """What leaves with the object, just before it leaves the store."""


class GenerationStrategy(Strategy):
    """A built-in kind whose spec changes count in metadata.generation (apps/v1 Deployments:
    the only such kind served besides pods and CRDs)."""

    has_generation = True


def keep_status(updated: JsonObject, existing: JsonObject) -> None:
    """The status as stored: a main-resource write does not change it."""
    if "status" in existing:
        updated["status"] = copy.deepcopy(existing["status"])
    else:
        updated.pop("status", None)
