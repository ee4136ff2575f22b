"""CustomResourceDefinitions' registry strategy, as apiextensions-apiserver's: required names
and versions, `metadata.name` = `<plural>.<group>`, defaulted names and versions, the status
conditions and stored versions the server keeps, and the custom resources a CRD serves from
the moment it is stored until it goes (taking its objects and watches with it)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from podtask_devcluster import errors
from podtask_devcluster.discovery import CRD_GROUP, CRD_PLURAL, ResourceType
from podtask_devcluster.podstatus import now_rfc3339
from podtask_devcluster.store import JsonObject, storage_key
from podtask_devcluster.strategies.base import Strategy, keep_status

if TYPE_CHECKING:
    from podtask_devcluster.registry import Registry

CRDS = storage_key(CRD_GROUP, CRD_PLURAL)


class CrdStrategy(Strategy):
    has_generation = True

    def bootstrap(self, registry: Registry) -> None:
        for crd in registry.store.objects_of(CRDS):
            registry.catalog.register_crd(crd)

    def prepare_for_create(self, resource: ResourceType, obj: JsonObject) -> None:
        _validate_crd(obj["metadata"]["name"], obj)
        obj["status"] = _crd_status(obj, None)

    def after_create(self, registry: Registry, stored: JsonObject) -> None:
        registry.catalog.register_crd(stored)
        for served in registry.catalog.resources_of_crd(stored["metadata"]["name"]):
            registry.store.begin_history(served.storage_key)

    def prepare_for_update(
        self, resource: ResourceType, updated: JsonObject, existing: JsonObject
    ) -> None:
        keep_status(updated, existing)
        _validate_crd(existing["metadata"]["name"], updated)
        updated["status"] = _crd_status(updated, existing.get("status"))

    def after_update(self, registry: Registry, stored: JsonObject) -> None:
        registry.catalog.register_crd(stored)

    def before_remove(self, registry: Registry, obj: JsonObject) -> None:
        spec = obj.get("spec") or {}
        key = storage_key(str(spec.get("group", "")), str((spec.get("names") or {}).get("plural")))
        for served in registry.store.objects_of(key):
            registry.store.remove(
                key, served["metadata"].get("namespace", ""), served["metadata"]["name"]
            )
        registry.catalog.unregister_crd(obj["metadata"]["name"])
        registry.store.close_watchers(key)


def _validate_crd(name: str, crd: JsonObject) -> None:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
    if not group or not plural or not kind:
        raise errors.invalid(
            CRD_GROUP,
            "CustomResourceDefinition",
            name,
            "spec",
            "Required value: spec.group, spec.names.plural and spec.names.kind are required",
        )
    if name != f"{plural}.{group}":
        raise errors.invalid(
            CRD_GROUP,
            "CustomResourceDefinition",
            name,
            "metadata.name",
            f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
        )
    if not spec.get("versions"):
        raise errors.invalid(
            CRD_GROUP, "CustomResourceDefinition", name, "spec.versions", "Required value"
        )


def _crd_status(crd: JsonObject, previous: JsonObject | None) -> JsonObject:
    spec = crd.setdefault("spec", {})
    names = spec.setdefault("names", {})
    kind = str(names.get("kind", ""))
    names.setdefault("singular", kind.lower())
    names.setdefault("listKind", f"{kind}List")
    spec.setdefault("scope", "Namespaced")
    for version in spec.get("versions") or []:
        version.setdefault("served", True)
        version.setdefault("storage", False)
    storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
    old_conditions = {
        c.get("type"): c for c in (previous or {}).get("conditions") or [] if isinstance(c, dict)
    }
    stamp = now_rfc3339()

    def condition(kind: str, reason: str, message: str) -> JsonObject:
        old = old_conditions.get(kind)
        return {
            "type": kind,
            "status": "True",
            "reason": reason,
            "message": message,
            "lastTransitionTime": old.get("lastTransitionTime", stamp) if old else stamp,
        }

    stored_versions = list((previous or {}).get("storedVersions") or [])
    for version in storage:
        if version not in stored_versions:
            stored_versions.append(version)
    return {
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition(
                "Established", "InitialNamesAccepted", "the initial names have been accepted"
            ),
        ],
        "acceptedNames": copy.deepcopy(names),
        "storedVersions": stored_versions,
    }
