"""The resource catalog (built-in resources plus those that CustomResourceDefinitions add) and
the discovery documents built from it: /api, /api/v1, /apis, /apis/{group}[/{version}]."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from podtask_devcluster.store import storage_key
from podtask_devcluster.tables import PrinterColumn

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CRD_GROUP = "apiextensions.k8s.io"
CRD_PLURAL = "customresourcedefinitions"


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ALL_VERBS
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    log_subresource: bool = False
    # None for built-ins; the CRD's columns (maybe none) for custom resources.
    printer_columns: tuple[PrinterColumn, ...] | None = None
    storage_version: bool = True
    # The version's openAPIV3Schema, for custom resources that declare one.
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    # A finished delete answers with the object (else with a Status), per resource as in
    # kube-apiserver's registries (ReturnDeletedObject).
    returns_deleted_object: bool = False

    @property
    def storage_key(self) -> str:
        return storage_key(self.group, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> tuple[str, str]:
        return self.group, self.version

    @property
    def is_custom(self) -> bool:
        return self.printer_columns is not None

    def api_resources(self) -> list[dict[str, Any]]:
        main: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        resources = [main]
        if self.status_subresource:
            resources.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        if self.log_subresource:
            resources.append(
                {
                    "name": f"{self.plural}/binding",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": "Binding",
                    "verbs": ["create"],
                }
            )
            resources.append(
                {
                    "name": f"{self.plural}/log",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": "Pod",
                    "verbs": ["get"],
                }
            )
        return resources


def _builtin(
    group: str,
    plural: str,
    kind: str,
    short: Iterable[str] = (),
    categories: Iterable[str] = (),
    *,
    namespaced: bool = True,
    status: bool = False,
    log: bool = False,
    returns_deleted: bool = False,
) -> ResourceType:
    """A built-in resource, served at v1 (every one the dev cluster has is)."""
    return ResourceType(
        group=group,
        version="v1",
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=tuple(short),
        categories=tuple(categories),
        status_subresource=status,
        log_subresource=log,
        returns_deleted_object=returns_deleted,
    )


_RBAC = "rbac.authorization.k8s.io"

# One row a resource: group, plural, kind, short names, categories, then what is not the
# default (namespaced, no status or log subresource, a Status answering a finished delete).
BUILTIN_RESOURCES: tuple[ResourceType, ...] = (
    _builtin("", "pods", "Pod", ["po"], ["all"], status=True, log=True, returns_deleted=True),
    _builtin(
        "", "namespaces", "Namespace", ["ns"], namespaced=False, status=True, returns_deleted=True
    ),
    _builtin("", "nodes", "Node", ["no"], namespaced=False, status=True),
    _builtin("", "events", "Event", ["ev"]),
    _builtin("", "secrets", "Secret"),
    _builtin("", "configmaps", "ConfigMap", ["cm"]),
    _builtin("", "services", "Service", ["svc"], ["all"], status=True, returns_deleted=True),
    _builtin("", "serviceaccounts", "ServiceAccount", ["sa"], returns_deleted=True),
    _builtin("", "endpoints", "Endpoints", ["ep"]),
    _builtin("coordination.k8s.io", "leases", "Lease"),
    _builtin("events.k8s.io", "events", "Event", ["ev"]),
    _builtin(
        CRD_GROUP,
        CRD_PLURAL,
        "CustomResourceDefinition",
        ["crd", "crds"],
        ["api-extensions"],
        namespaced=False,
        status=True,
    ),
    _builtin("apps", "deployments", "Deployment", ["deploy"], ["all"], status=True),
    _builtin(_RBAC, "roles", "Role"),
    _builtin(_RBAC, "rolebindings", "RoleBinding"),
    _builtin(_RBAC, "clusterroles", "ClusterRole", namespaced=False),
    _builtin(_RBAC, "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
)


def resources_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One ResourceType per served version of a CustomResourceDefinition."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec.get("group", ""))
    plural = str(names.get("plural", ""))
    kind = str(names.get("kind", ""))
    if not group or not plural or not kind:
        return []
    found = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        found.append(
            ResourceType(
                group=group,
                version=str(version.get("name", "")),
                plural=plural,
                singular=str(names.get("singular") or kind.lower()),
                kind=kind,
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in subresources,
                printer_columns=tuple(
                    PrinterColumn.from_crd(c) for c in version.get("additionalPrinterColumns") or []
                ),
                storage_version=bool(version.get("storage", False)),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
            )
        )
    return found


@dataclass
class ResourceCatalog:
    """What the server serves, by (group, version, plural)."""

    _types: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)
    _by_crd: dict[str, list[ResourceType]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for resource in BUILTIN_RESOURCES:
            self._types[(resource.group, resource.version, resource.plural)] = resource

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_storage_key(self, key: str) -> ResourceType | None:
        for resource in self._types.values():
            if resource.storage_key == key and resource.storage_version:
                return resource
        for resource in self._types.values():
            if resource.storage_key == key:
                return resource
        return None

    def register_crd(self, crd: dict[str, Any]) -> None:
        name = str(crd["metadata"]["name"])
        self.unregister_crd(name)
        resources = resources_from_crd(crd)
        for resource in resources:
            self._types[(resource.group, resource.version, resource.plural)] = resource
        self._by_crd[name] = resources

    def resources_of_crd(self, name: str) -> list[ResourceType]:
        return list(self._by_crd.get(name, []))

    def unregister_crd(self, name: str) -> None:
        for resource in self._by_crd.pop(name, []):
            self._types.pop((resource.group, resource.version, resource.plural), None)

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    # ------------------------------------------------------------ documents

    def group_versions(self, group: str) -> list[str]:
        versions = sorted({r.version for r in self._types.values() if r.group == group})
        return sorted(versions, key=_version_priority)

    def api_versions(self, server_address: str) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
            ],
        }

    def api_group(self, group: str) -> dict[str, Any] | None:
        versions = self.group_versions(group)
        if not group or not versions:
            return None
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": entries,
            "preferredVersion": entries[0],
        }

    def api_group_list(self) -> dict[str, Any]:
        groups = sorted({r.group for r in self._types.values() if r.group})
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [g for g in (self.api_group(name) for name in groups) if g is not None],
        }

    def api_resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        resources = [r for r in self._types.values() if r.group == group and r.version == version]
        if not resources:
            return None
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [
                entry
                for r in sorted(resources, key=lambda r: r.plural)
                for entry in r.api_resources()
            ],
        }


def _version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version ordering: GA before beta before alpha, higher numbers first."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (3, 0, 0, version)
    major = int(match[1])
    stage = {"": 0, "beta": 1, "alpha": 2}[match[2] or ""]
    minor = int(match[3] or 0)
    return (stage, -major, -minor, version)


# ---------------------------------------------------------------- OpenAPI v3
#
# kubectl asks the OpenAPI v3 documents whether the server supports the `fieldValidation`
# query parameter for a kind (then it leaves validation to the server), and `kubectl explain`
# reads the kind's schema from them. Custom resources carry their CRD's schema, as
# kube-apiserver publishes it (named by the reversed group, metadata a reference to
# ObjectMeta); built-in kinds carry only the operations.

_FIELD_VALIDATION = {
    "name": "fieldValidation",
    "in": "query",
    "description": "How the server treats unknown or duplicate fields.",
    "schema": {"type": "string", "uniqueItems": True},
}
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_OBJECT_META_SCHEMA: dict[str, Any] = {
    "description": "ObjectMeta is metadata that all persisted resources must have, which "
    "includes all objects users must create.",
    "type": "object",
    "properties": {
        "name": {"description": "Name must be unique within a namespace.", "type": "string"},
        "namespace": {
            "description": "Namespace defines the space within which each name must be unique.",
            "type": "string",
        },
        "labels": {
            "description": "Map of string keys and values that can be used to "
            "organize and categorize (scope and select) objects.",
            "type": "object",
            "additionalProperties": {"type": "string", "default": ""},
        },
        "annotations": {
            "description": "Annotations is an unstructured key value map.",
            "type": "object",
            "additionalProperties": {"type": "string", "default": ""},
        },
        "uid": {
            "description": "UID is the unique in time and space value for this object.",
            "type": "string",
        },
        "resourceVersion": {
            "description": "An opaque value that represents the internal version of this object.",
            "type": "string",
        },
        "generation": {
            "description": "A sequence number representing a specific "
            "generation of the desired state.",
            "type": "integer",
            "format": "int64",
        },
        "creationTimestamp": {
            "description": "CreationTimestamp is a timestamp representing "
            "the server time when this object was created.",
            "type": "string",
            "format": "date-time",
        },
    },
}


def schema_name(resource: ResourceType) -> str:
    reversed_group = (
        ".".join(reversed(resource.group.split("."))) if resource.group else "io.k8s.api.core"
    )
    return f"{reversed_group}.{resource.version}.{resource.kind}"


def _published_schema(resource: ResourceType) -> dict[str, Any]:
    schema = dict(resource.schema or {"type": "object"})
    properties = dict(schema.get("properties") or {})
    properties["apiVersion"] = {
        "description": "APIVersion defines the versioned schema of this representation of an "
        "object.",
        "type": "string",
    }
    properties["kind"] = {
        "description": "Kind is a string value representing the REST resource this object "
        "represents.",
        "type": "string",
    }
    properties["metadata"] = {
        "description": "Standard object's metadata.",
        "allOf": [{"$ref": f"#/components/schemas/{OBJECT_META}"}],
    }
    schema["properties"] = properties
    schema["x-kubernetes-group-version-kind"] = [
        {"group": resource.group, "version": resource.version, "kind": resource.kind}
    ]
    return schema


def openapi_v3_index(catalog: ResourceCatalog) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for resource in catalog.all():
        prefix = "api" if not resource.group else "apis"
        key = f"{prefix}/{resource.api_version}"
        paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}"}
    return {"paths": paths}


def openapi_v3_document(catalog: ResourceCatalog, group: str, version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for resource in catalog.all():
        if resource.group != group or resource.version != version:
            continue
        root = "/api/v1" if not group else f"/apis/{group}/{version}"
        scope = "/namespaces/{namespace}" if resource.namespaced else ""
        gvk = {"group": group, "version": version, "kind": resource.kind}
        operation: dict[str, Any] = {
            "operationId": f"patch{resource.kind}",
            "parameters": [_FIELD_VALIDATION],
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "responses": {"200": {"description": "OK"}},
        }
        if resource.is_custom:
            name = schema_name(resource)
            schemas[name] = _published_schema(resource)
            schemas[OBJECT_META] = _OBJECT_META_SCHEMA
            reference = {"$ref": f"#/components/schemas/{name}"}
            operation["responses"]["200"]["content"] = {"application/json": {"schema": reference}}
        paths[f"{root}{scope}/{resource.plural}/{{name}}"] = {"patch": operation}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }
