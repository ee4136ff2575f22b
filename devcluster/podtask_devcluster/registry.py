"""The API's write rules: what create, read, list, update, patch and delete do to stored
objects. Server-managed metadata (uid, creationTimestamp, resourceVersion, generation,
deletionTimestamp), validation, optimistic concurrency, finalizers, the status subresource,
namespaces, CRD registration and graceful pod deletion live here; HTTP does not."""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import json
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from podtask_devcluster import apply, custom_resources, errors, patches
from podtask_devcluster.custom_resources import FieldValidation
from podtask_devcluster.discovery import CRD_GROUP, CRD_PLURAL, ResourceCatalog, ResourceType
from podtask_devcluster.podstatus import now_rfc3339
from podtask_devcluster.quantities import canonical_quantity
from podtask_devcluster.schema import decoded_numbers
from podtask_devcluster.selectors import FieldSelector, LabelSelector
from podtask_devcluster.store import JsonObject, ObjectStore, storage_key

NAMESPACES = storage_key("", "namespaces")
PODS = storage_key("", "pods")
NODES = storage_key("", "nodes")
CRDS = storage_key(CRD_GROUP, CRD_PLURAL)
SECRETS = storage_key("", "secrets")
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
PROPAGATION_FINALIZERS = {"Orphan": ORPHAN, "Foreground": FOREGROUND}


def _rfc3339_after(seconds: int) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _shifted(timestamp: str, seconds: int) -> str:
    moment = dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return (moment + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _canonical_resources(name: str, spec: JsonObject) -> None:
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


@dataclass(frozen=True)
class DeleteOptions:
    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class ListResult:
    items: list[JsonObject]
    resource_version: str
    continue_token: str | None
    remaining: int | None


def _spec_part(obj: JsonObject) -> JsonObject:
    """Everything that counts for `generation`: all but metadata, status and type info."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class Registry:
    def __init__(self, store: ObjectStore, catalog: ResourceCatalog) -> None:
        self.store = store
        self.catalog = catalog
        self.create_observers: list[Callable[[JsonObject], None]] = []

    # ------------------------------------------------------------ start-up

    def bootstrap(self) -> None:
        for crd in self.store.objects_of(CRDS):
            self.catalog.register_crd(crd)
        for name in INITIAL_NAMESPACES:
            if self.store.get(NAMESPACES, "", name) is None:
                self.store.put(NAMESPACES, self._new_namespace(name))

    def _new_namespace(self, name: str) -> JsonObject:
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

    # ------------------------------------------------------------ presentation

    @staticmethod
    def present(resource: ResourceType, obj: JsonObject) -> JsonObject:
        """The object as the requested version shows it (storage keeps whichever was written)."""
        return {**obj, "apiVersion": resource.api_version, "kind": resource.kind}

    # ------------------------------------------------------------ validation

    def _validate_name(self, resource: ResourceType, name: str) -> None:
        if resource.plural == "namespaces" and not resource.group:
            if len(name) > 63 or not _DNS_LABEL.match(name):
                raise errors.invalid(
                    resource.group,
                    resource.kind,
                    name,
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower '
                    "case alphanumeric characters or '-', and must start and end with an "
                    "alphanumeric character",
                )
        elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
            raise errors.invalid(
                resource.group,
                resource.kind,
                name,
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                "case alphanumeric characters, '-' or '.', and must start and end with an "
                "alphanumeric character",
            )

    def _validate_labels(self, resource: ResourceType, name: str, meta: JsonObject) -> None:
        labels = meta.get("labels")
        if labels is None:
            return
        if not isinstance(labels, dict):
            raise errors.invalid(
                resource.group, resource.kind, name, "metadata.labels", "must be a map"
            )
        for key, value in labels.items():
            prefix, _, label_name = key.rpartition("/")
            if (
                (prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)))
                or len(label_name) > 63
                or not _LABEL_NAME.match(label_name)
            ):
                raise errors.invalid(
                    resource.group,
                    resource.kind,
                    name,
                    "metadata.labels",
                    f'Invalid value: "{key}": name part must consist of alphanumeric characters, '
                    "'-', '_' or '.', and must start and end with an alphanumeric character",
                )
            if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                raise errors.invalid(
                    resource.group,
                    resource.kind,
                    name,
                    f"metadata.labels[{key}]",
                    f'Invalid value: "{value}": a valid label must be an empty string or consist '
                    "of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character (at most 63 characters)",
                )

    def _validate_pod(self, name: str, pod: JsonObject) -> None:
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

    def _validate_crd(self, name: str, crd: JsonObject) -> None:
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

    def _check_type(self, resource: ResourceType, body: JsonObject) -> None:
        kind = body.get("kind")
        if kind and kind != resource.kind:
            raise errors.bad_request(
                f"the kind in the body ({kind}) does not match the resource ({resource.kind})"
            )
        api_version = body.get("apiVersion")
        if api_version:
            group = api_version.rpartition("/")[0] if "/" in api_version else ""
            if group != resource.group:
                raise errors.bad_request(
                    f"the API version in the data ({api_version}) does not match the expected "
                    f"API version ({resource.api_version})"
                )

    # ------------------------------------------------------------ reading

    def get(self, resource: ResourceType, namespace: str, name: str) -> JsonObject:
        obj = self.store.get(resource.storage_key, namespace if resource.namespaced else "", name)
        if obj is None:
            raise errors.not_found(resource.group, resource.plural, name)
        return obj

    def require_namespace(self, namespace: str) -> None:
        if self.store.get(NAMESPACES, "", namespace) is None:
            raise errors.not_found("", "namespaces", namespace)

    def list_objects(
        self,
        resource: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListResult:
        key = resource.storage_key
        scope = namespace if resource.namespaced else None
        pinned = fields.exact_name()
        if pinned is not None and scope is not None:
            found = self.store.get(key, scope, pinned)
            candidates = [found] if found is not None else []
        else:
            candidates = self.store.objects_of(key, scope)
        list_version = str(self.store.resource_version)
        start: tuple[str, str] | None = None
        if continue_token:
            list_version, start = _decode_continue(continue_token)
        matched = [
            obj
            for obj in candidates
            if (start is None or _position(obj) > start)
            and labels.matches(obj["metadata"].get("labels"))
            and fields.matches(obj)
        ]
        if limit and limit > 0 and len(matched) > limit:
            page = matched[:limit]
            token = _encode_continue(list_version, _position(page[-1]))
            return ListResult(page, list_version, token, len(matched) - limit)
        return ListResult(matched, list_version, None, None)

    # ------------------------------------------------------------ creating

    def create(
        self,
        resource: ResourceType,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool = False,
        validation: FieldValidation | None = None,
    ) -> JsonObject:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        self._check_type(resource, body)
        obj = copy.deepcopy(body)
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if resource.is_custom:
            custom_resources.decode(resource, obj, validation or FieldValidation())
        if resource.namespaced:
            body_namespace = meta.get("namespace")
            if namespace is None:
                namespace = body_namespace or "default"
            if body_namespace and body_namespace != namespace:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
            namespace = ""
        name = meta.get("name")
        generate = meta.get("generateName")
        if not name and generate:
            name = self._generate_name(resource, namespace, str(generate))
            meta["name"] = name
        if not name or not isinstance(name, str):
            raise errors.invalid(
                resource.group,
                resource.kind,
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            )
        self._validate_name(resource, name)
        self._validate_labels(resource, name, meta)
        if resource.namespaced:
            self.require_namespace(namespace)
        if self.store.get(resource.storage_key, namespace, name) is not None:
            raise errors.already_exists(resource.group, resource.plural, name)
        obj["apiVersion"] = resource.api_version
        obj["kind"] = resource.kind
        for server_field in (
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ):
            meta.pop(server_field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if _has_generation(resource):
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        self._prepare_create(resource, name, obj)
        if resource.is_custom:
            custom_resources.check(resource, name, obj, None)
        if dry_run:
            return obj
        stored = self.store.put(resource.storage_key, obj)
        if resource.storage_key == CRDS:
            self.catalog.register_crd(stored)
            for served in self.catalog.resources_of_crd(name):
                self.store.begin_history(served.storage_key)
        for observer in list(self.create_observers):
            observer(stored)
        return stored

    def _generate_name(self, resource: ResourceType, namespace: str, prefix: str) -> str:
        for _ in range(16):
            name = prefix[:58] + "".join(random.choices(_GENERATE_ALPHABET, k=5))
            if self.store.get(resource.storage_key, namespace, name) is None:
                return name
        raise errors.already_exists(resource.group, resource.plural, prefix)

    def _prepare_create(self, resource: ResourceType, name: str, obj: JsonObject) -> None:
        key = resource.storage_key
        if key == PODS:
            self._validate_pod(name, obj)
            spec = obj["spec"]
            _canonical_resources(name, spec)
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("dnsPolicy", "ClusterFirst")
            spec.setdefault("schedulerName", "default-scheduler")
            obj["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}
        elif key == NAMESPACES:
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
        elif key == CRDS:
            self._validate_crd(name, obj)
            obj["status"] = _crd_status(obj, None)
        elif resource.status_subresource and key != NODES:
            # (A Node may be created with its status: kube's node strategy keeps it.)
            obj.pop("status", None)
        if key == SECRETS:
            _encode_string_data(obj)

    # ------------------------------------------------------------ updating

    def update(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        validation: FieldValidation | None = None,
    ) -> JsonObject:
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise errors.bad_request("the request body must be a JSON object with metadata")
        self._check_type(resource, body)
        namespace = namespace if resource.namespaced else ""
        existing = self.get(resource, namespace, name)
        body_meta = body.get("metadata") or {}
        if body_meta.get("name") and body_meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({body_meta['name']}) does not match the name on the "
                f"URL ({name})"
            )
        if (
            resource.namespaced
            and body_meta.get("namespace")
            and body_meta["namespace"] != namespace
        ):
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        wanted_version = body_meta.get("resourceVersion")
        if not wanted_version and resource.is_custom:
            # Custom resources allow no unconditional update (AllowUnconditionalUpdate false).
            raise errors.ApiError(
                422,
                "Invalid",
                f'{errors.qualified(resource.group, resource.plural)} "{name}" is invalid: '
                "metadata.resourceVersion: Invalid value: 0: must be specified for an update",
                name=name,
                group=resource.group,
                kind=resource.plural,
                causes=[
                    {
                        "reason": "FieldValueInvalid",
                        "message": "Invalid value: 0: must be specified for an update",
                        "field": "metadata.resourceVersion",
                    }
                ],
            )
        if wanted_version and str(wanted_version) != existing["metadata"]["resourceVersion"]:
            raise errors.conflict(resource.group, resource.plural, name)
        return self._write_update(
            resource, existing, body, subresource, dry_run=dry_run, validation=validation
        )

    def _write_update(
        self,
        resource: ResourceType,
        existing: JsonObject,
        body: JsonObject,
        subresource: str | None,
        *,
        dry_run: bool = False,
        validation: FieldValidation | None = None,
    ) -> JsonObject:
        old_meta = existing["metadata"]
        name = old_meta["name"]
        if resource.is_custom:
            body = copy.deepcopy(body)
            body.setdefault("metadata", {})
            custom_resources.decode(resource, body, validation or FieldValidation())
        if subresource == "status":
            updated = copy.deepcopy(existing)
            if "status" in body:
                updated["status"] = copy.deepcopy(body["status"])
            else:
                updated.pop("status", None)
        else:
            updated = copy.deepcopy(body)
            meta = updated.setdefault("metadata", {})
            for kept in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ):
                if kept in old_meta:
                    meta[kept] = old_meta[kept]
                else:
                    meta.pop(kept, None)
            meta.pop("resourceVersion", None)
            if "managedFields" not in meta and "managedFields" in old_meta:
                meta["managedFields"] = copy.deepcopy(old_meta["managedFields"])
            if resource.status_subresource or resource.storage_key == CRDS:
                if "status" in existing:
                    updated["status"] = copy.deepcopy(existing["status"])
                else:
                    updated.pop("status", None)
            self._validate_labels(resource, name, meta)
            if resource.storage_key == PODS:
                self._validate_pod(name, updated)
            if resource.storage_key == SECRETS:
                _encode_string_data(updated)
            if resource.storage_key == CRDS:
                self._validate_crd(name, updated)
                updated["status"] = _crd_status(updated, existing.get("status"))
        updated["apiVersion"] = resource.api_version
        updated["kind"] = resource.kind
        if resource.is_custom:
            custom_resources.check(resource, name, updated, existing, subresource)
        meta = updated["metadata"]
        if _has_generation(resource) and _spec_part(updated) != _spec_part(existing):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if old_meta.get("deletionTimestamp"):
            # Like the real server: no new finalizers once deletion has started.
            old_finalizers = set(old_meta.get("finalizers") or [])
            if set(meta.get("finalizers") or []) - old_finalizers:
                raise errors.ApiError(
                    422,
                    "Invalid",
                    f'{resource.kind} "{name}" is invalid: metadata.finalizers: Forbidden: no new '
                    "finalizers can be added if the object is being deleted",
                    name=name,
                    group=resource.group,
                    kind=resource.kind,
                )
        if updated == existing:
            return existing
        if dry_run:
            return updated
        stored = self.store.put(resource.storage_key, updated)
        if resource.storage_key == CRDS:
            self.catalog.register_crd(stored)
        if (
            stored["metadata"].get("deletionTimestamp")
            and not stored["metadata"].get("finalizers")
            and not stored["metadata"].get("deletionGracePeriodSeconds")
        ):
            # kube's shouldDeleteDuringUpdate: the last finalizer gone and no grace period
            # pending (a pod in graceful deletion waits for its kubelet).
            return self._remove(resource, stored)
        return stored

    def patch(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        raw: bytes,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        validation: FieldValidation | None = None,
        field_manager: str | None = None,
        force: bool = False,
    ) -> tuple[JsonObject, int]:
        """The patched object and the status code: 201 when an apply created it."""
        media = content_type.split(";")[0].strip().lower()
        if media == patches.APPLY_PATCH:
            return self._apply(
                resource,
                namespace,
                name,
                raw,
                subresource=subresource,
                dry_run=dry_run,
                validation=validation,
                field_manager=field_manager,
                force=force,
            )
        if force:
            raise _patch_options_invalid(
                "force", "Forbidden", "may not be specified for non-apply patch"
            )
        if media not in (patches.MERGE_PATCH, patches.JSON_PATCH, patches.STRATEGIC_MERGE_PATCH):
            raise errors.unsupported_media_type(
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {patches.JSON_PATCH}, {patches.MERGE_PATCH}, "
                f"{patches.STRATEGIC_MERGE_PATCH}"
            )
        try:
            document = decoded_numbers(json.loads(raw or b"null"))
        except ValueError as error:
            raise errors.bad_request(f"invalid JSON in the patch body: {error}") from error
        namespace = namespace if resource.namespaced else ""
        existing = self.get(resource, namespace, name)
        try:
            if media == patches.JSON_PATCH:
                patched = patches.json_patch(existing, document)
            elif media == patches.MERGE_PATCH:
                patched = patches.merge_patch(existing, document)
            else:
                patched = patches.strategic_merge_patch(existing, document)
        except patches.PatchError as error:
            raise errors.ApiError(
                422, "Invalid", f"the patch could not be applied: {error}"
            ) from error
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise errors.ApiError(422, "Invalid", "the patch must leave an object with metadata")
        patched_meta = patched["metadata"]
        if patched_meta.get("name", name) != name:
            raise errors.bad_request("a patch cannot change metadata.name")
        if (
            patched_meta.get("resourceVersion")
            and str(patched_meta["resourceVersion"]) != existing["metadata"]["resourceVersion"]
        ):
            raise errors.conflict(resource.group, resource.plural, name)
        if validation is not None:
            validation.patched = patched
        updated = self._write_update(
            resource, existing, patched, subresource, dry_run=dry_run, validation=validation
        )
        return updated, 200

    def _apply(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        raw: bytes,
        *,
        subresource: str | None,
        dry_run: bool,
        validation: FieldValidation | None,
        field_manager: str | None,
        force: bool,
    ) -> tuple[JsonObject, int]:
        if not field_manager:
            raise _patch_options_invalid(
                "fieldManager", "Required value", "is required for apply patch"
            )
        try:
            config = decoded_numbers(yaml.safe_load(raw or b""))
        except yaml.YAMLError as error:
            raise errors.bad_request(f"error decoding YAML: {error}") from error
        if not isinstance(config, dict):
            raise errors.bad_request("the applied configuration must be an object")
        self._check_type(resource, config)
        config.setdefault("metadata", {})
        if not isinstance(config["metadata"], dict):
            raise errors.bad_request("metadata must be an object")
        if config["metadata"].get("name", name) != name:
            raise errors.bad_request(
                f"the name of the object ({config['metadata']['name']}) does not match the "
                f"name on the URL ({name})"
            )
        scope = namespace if resource.namespaced else ""
        existing = self.store.get(resource.storage_key, scope, name)
        entry = apply.managed_entry(
            field_manager, resource.api_version, config, now_rfc3339(), resource.schema
        )
        if existing is None:
            if subresource is not None:
                raise errors.not_found(resource.group, resource.plural, name)
            body = copy.deepcopy(config)
            body["metadata"]["name"] = name
            body["metadata"]["managedFields"] = [entry]
            created = self.create(
                resource, namespace or None, body, dry_run=dry_run, validation=validation
            )
            return created, 201
        managed = list(existing["metadata"].get("managedFields") or [])
        found = apply.conflicts(existing, config, field_manager, managed)
        if found and force:
            managed = apply.taken_over(managed, field_manager, found)
            found = []
        if found:
            listed = "\n".join(f'- conflict with "{who}": {path}' for who, path in found)
            raise errors.ApiError(
                409,
                "Conflict",
                f"Apply failed with {len(found)} conflict{'s' if len(found) > 1 else ''}: "
                + (
                    f'conflict with "{found[0][0]}": {found[0][1]}'
                    if len(found) == 1
                    else "\n" + listed
                ),
                causes=[
                    {
                        "reason": "FieldManagerConflict",
                        "message": f'conflict with "{who}"',
                        "field": path,
                    }
                    for who, path in found
                ],
            )
        merged = apply.merged_object(existing, config, field_manager, managed, resource.schema)
        merged["metadata"]["managedFields"] = apply.with_entry(managed, entry)
        updated = self._write_update(
            resource, existing, merged, subresource, dry_run=dry_run, validation=validation
        )
        return updated, 200

    # ------------------------------------------------------------ deleting

    def delete(
        self, resource: ResourceType, namespace: str, name: str, options: DeleteOptions
    ) -> JsonObject:
        namespace = namespace if resource.namespaced else ""
        existing = self.get(resource, namespace, name)
        meta = existing["metadata"]
        if options.precondition_uid and options.precondition_uid != meta.get("uid"):
            raise errors.conflict(
                resource.group,
                resource.plural,
                name,
                f"Precondition failed: UID in precondition: {options.precondition_uid}, "
                f"UID in object meta: {meta.get('uid')}",
            )
        if (
            options.precondition_resource_version
            and options.precondition_resource_version != meta.get("resourceVersion")
        ):
            raise errors.conflict(
                resource.group,
                resource.plural,
                name,
                "Precondition failed: ResourceVersion in precondition: "
                f"{options.precondition_resource_version}, ResourceVersion in object meta: "
                f"{meta.get('resourceVersion')}",
            )
        if resource.storage_key == NAMESPACES and name in PROTECTED_NAMESPACES:
            raise errors.ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                name=name,
                kind="namespaces",
            )
        if options.dry_run:
            return existing
        policy_finalizer = PROPAGATION_FINALIZERS.get(options.propagation_policy or "")
        if policy_finalizer is not None and resource.storage_key != PODS:
            # Like the real server: the garbage collector finishes these deletions (it orphans
            # or deletes the dependents, then removes the finalizer).
            return self._defer_for_collector(resource, existing, policy_finalizer)
        if options.propagation_policy == "Orphan":
            self._orphan_dependents(meta.get("uid", ""))
        if resource.storage_key == PODS:
            return self._delete_pod(resource, existing, options)
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return existing
            terminating = copy.deepcopy(existing)
            terminating["metadata"]["deletionTimestamp"] = now_rfc3339()
            terminating["metadata"]["deletionGracePeriodSeconds"] = 0
            return self.store.put(resource.storage_key, terminating)
        return self._remove(resource, existing)

    def _defer_for_collector(
        self, resource: ResourceType, existing: JsonObject, finalizer: str
    ) -> JsonObject:
        meta = existing["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if finalizer in finalizers and meta.get("deletionTimestamp"):
            return existing
        terminating = copy.deepcopy(existing)
        other = PROPAGATION_FINALIZERS["Orphan" if finalizer == FOREGROUND else "Foreground"]
        terminating["metadata"]["finalizers"] = [
            f for f in finalizers if f != other and f != finalizer
        ] + [finalizer]
        terminating["metadata"].setdefault("deletionTimestamp", now_rfc3339())
        terminating["metadata"].setdefault("deletionGracePeriodSeconds", 0)
        return self.store.put(resource.storage_key, terminating)

    def drop_finalizer(self, key: str, obj: JsonObject, finalizer: str) -> None:
        """The collector has done a deletion's work: remove its finalizer (and the object,
        when no finalizer is left)."""
        resource = self.catalog.by_storage_key(key)
        if resource is None:
            return
        current = self.store.get(key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if current is None or finalizer not in (current["metadata"].get("finalizers") or []):
            return
        updated = copy.deepcopy(current)
        remaining = [f for f in updated["metadata"]["finalizers"] if f != finalizer]
        if remaining:
            updated["metadata"]["finalizers"] = remaining
            self.store.put(key, updated)
            return
        del updated["metadata"]["finalizers"]
        stored = self.store.put(key, updated)
        self._remove(resource, stored)

    def orphan_dependents(self, owner_uid: str) -> None:
        self._orphan_dependents(owner_uid)

    def _delete_pod(
        self, resource: ResourceType, pod: JsonObject, options: DeleteOptions
    ) -> JsonObject:
        """Graceful deletion as kube-apiserver does it (rest.BeforeDelete and the pod
        strategy's CheckGracefulDelete): a pod bound to a node and not finished gets a
        deletionTimestamp `grace` seconds ahead and stays until its kubelet, having stopped it,
        deletes it with gracePeriodSeconds=0; a later delete may only shorten the grace. A pod
        never bound, or finished, goes at once (unless finalizers hold it)."""
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        current = meta.get("deletionGracePeriodSeconds")
        if meta.get("deletionTimestamp") and current:
            grace = options.grace_period_seconds
            if grace is None or grace >= current:
                return pod  # graceful deletion pending: nothing to do
            terminating = copy.deepcopy(pod)
            if grace > 0:
                terminating["metadata"]["deletionTimestamp"] = _shifted(
                    str(meta["deletionTimestamp"]), grace - int(current)
                )
            terminating["metadata"]["deletionGracePeriodSeconds"] = max(grace, 0)
            if grace > 0 or meta.get("finalizers"):
                return self.store.put(resource.storage_key, terminating)
            removed = copy.deepcopy(self._remove(resource, pod))
            removed["metadata"]["deletionGracePeriodSeconds"] = 0
            return removed
        if meta.get("deletionTimestamp"):
            return pod if meta.get("finalizers") else self._remove(resource, pod)
        grace = options.grace_period_seconds
        if grace is None:
            grace = int(spec.get("terminationGracePeriodSeconds") or 0)
        if not spec.get("nodeName") or (pod.get("status") or {}).get("phase") in (
            "Succeeded",
            "Failed",
        ):
            grace = 0
        if grace < 0:
            grace = 1
        terminating = copy.deepcopy(pod)
        terminating["metadata"]["deletionTimestamp"] = _rfc3339_after(grace)
        terminating["metadata"]["deletionGracePeriodSeconds"] = grace
        if grace > 0 or meta.get("finalizers"):
            return self.store.put(resource.storage_key, terminating)
        # Deleted at once, and answered with the object as kube marks it on the way.
        removed = copy.deepcopy(self._remove(resource, pod))
        removed["metadata"].update(
            {
                k: terminating["metadata"][k]
                for k in ("deletionTimestamp", "deletionGracePeriodSeconds")
            }
        )
        return removed

    def bind(self, namespace: str, name: str, binding: Any) -> JsonObject:
        """`pods/binding` (what kube-scheduler writes): the pod's node, the binding's
        annotations and PodScheduled=True. 409 if the pod is bound already."""
        if not isinstance(binding, dict) or not isinstance(binding.get("target"), dict):
            raise errors.bad_request("a Binding needs a target")
        target = binding["target"]
        node = target.get("name")
        if not node or target.get("kind", "Node") != "Node":
            raise errors.invalid("", "Binding", name, "target.name", "Required value")
        resource = self.catalog.by_storage_key(PODS)
        assert resource is not None
        pod = self.get(resource, namespace, name)
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
        return self.store.put(PODS, bound)

    def delete_collection(
        self,
        resource: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        options: DeleteOptions,
    ) -> list[JsonObject]:
        listed = self.list_objects(resource, namespace, labels, fields)
        deleted = []
        for obj in listed.items:
            try:
                deleted.append(
                    self.delete(
                        resource,
                        obj["metadata"].get("namespace", ""),
                        obj["metadata"]["name"],
                        options,
                    )
                )
            except errors.ApiError as error:
                if error.code != 404:
                    raise
        return deleted

    def delete_stored(self, key: str, obj: JsonObject, options: DeleteOptions) -> None:
        """Delete an object found in the store (garbage collection, namespace cleanup)."""
        resource = self.catalog.by_storage_key(key)
        if resource is None:
            self.store.remove(key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            return
        try:
            self.delete(
                resource, obj["metadata"].get("namespace", ""), obj["metadata"]["name"], options
            )
        except errors.ApiError as error:
            if error.code != 404:
                raise

    def _remove(self, resource: ResourceType, obj: JsonObject) -> JsonObject:
        meta = obj["metadata"]
        key = resource.storage_key
        if key == CRDS:
            self._drop_custom_resources(obj)
        elif key == NAMESPACES:
            self._empty_namespace(meta["name"])
        final = self.store.remove(key, meta.get("namespace", ""), meta["name"])
        return final if final is not None else obj

    def _drop_custom_resources(self, crd: JsonObject) -> None:
        spec = crd.get("spec") or {}
        key = storage_key(str(spec.get("group", "")), str((spec.get("names") or {}).get("plural")))
        for obj in self.store.objects_of(key):
            self.store.remove(key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        self.catalog.unregister_crd(crd["metadata"]["name"])
        self.store.close_watchers(key)

    def _empty_namespace(self, namespace: str) -> None:
        for key, obj in list(self.store.namespaced_objects(namespace)):
            if key == PODS:
                # As the namespace controller deletes them: gracefully, through the kubelet.
                self.delete_stored(key, obj, DeleteOptions())
                continue
            self.store.remove(key, namespace, obj["metadata"]["name"])

    def _orphan_dependents(self, owner_uid: str) -> None:
        for key, dependent in self.store.dependents(owner_uid):
            orphaned = copy.deepcopy(dependent)
            orphaned["metadata"]["ownerReferences"] = [
                ref
                for ref in orphaned["metadata"].get("ownerReferences") or []
                if ref.get("uid") != owner_uid
            ]
            if not orphaned["metadata"]["ownerReferences"]:
                del orphaned["metadata"]["ownerReferences"]
            self.store.put(key, orphaned)


def _has_generation(resource: ResourceType) -> bool:
    """Kinds whose registry strategy keeps metadata.generation (the others have none)."""
    return resource.is_custom or resource.storage_key in (
        CRDS,
        PODS,
        storage_key("apps", "deployments"),
    )


def _encode_string_data(secret: JsonObject) -> None:
    """Like the real API server: `stringData` is write-only, folded into base64 `data`."""
    string_data = secret.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = secret.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


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


def _position(obj: JsonObject) -> tuple[str, str]:
    meta = obj["metadata"]
    return str(meta.get("namespace") or ""), str(meta["name"])


def _encode_continue(version: str, position: tuple[str, str]) -> str:
    raw = json.dumps({"v": "podtask/1", "rv": version, "start": list(position)})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_continue(token: str) -> tuple[str, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        start = data["start"]
        return str(data["rv"]), (str(start[0]), str(start[1]))
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as error:
        raise errors.bad_request(f"invalid continue token: {error}") from error


def _patch_options_invalid(field: str, label: str, detail: str) -> errors.ApiError:
    reason = "FieldValueRequired" if label == "Required value" else "FieldValueForbidden"
    return errors.ApiError(
        422,
        "Invalid",
        f'PatchOptions.meta.k8s.io "" is invalid: {field}: {label}: {detail}',
        group="meta.k8s.io",
        kind="PatchOptions",
        causes=[{"reason": reason, "message": f"{label}: {detail}", "field": field}],
    )
