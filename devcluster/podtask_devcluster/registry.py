"""The API's generic write path: what create, read, list, update, patch and delete do to
any stored object. Server-managed metadata (uid, creationTimestamp, resourceVersion,
generation, deletionTimestamp), optimistic concurrency, finalizers, the status subresource,
namespaces, paging and propagation live here; each kind's own rules (defaults, validation,
status, graceful deletion, what goes with it) are its strategy's (`strategies`), asked at
the same points kube-apiserver asks its REST strategies. HTTP does not live here."""

from __future__ import annotations

import base64
import binascii
import copy
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podtask_devcluster import apply, errors, object_meta, patch_requests, patches
from podtask_devcluster.discovery import ResourceCatalog, ResourceType
from podtask_devcluster.podstatus import now_rfc3339
from podtask_devcluster.request_options import (
    FOREGROUND,
    PROPAGATION_FINALIZERS,
    DeleteOptions,
    WriteOptions,
)
from podtask_devcluster.selectors import FieldSelector, LabelSelector
from podtask_devcluster.store import JsonObject, ObjectStore
from podtask_devcluster.strategies import NAMESPACES, all_strategies, pods, strategy_for

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


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
        for strategy in all_strategies():
            strategy.bootstrap(self)

    # ------------------------------------------------------------ presentation

    @staticmethod
    def present(resource: ResourceType, obj: JsonObject) -> JsonObject:
        """The object as the requested version shows it (storage keeps whichever was written)."""
        return {**obj, "apiVersion": resource.api_version, "kind": resource.kind}

    # ------------------------------------------------------------ reading

    def get(self, resource: ResourceType, namespace: str, name: str) -> JsonObject:
        obj = self.store.get(resource.storage_key, namespace if resource.namespaced else "", name)
        if obj is None:
            raise errors.not_found(resource.group, resource.plural, name)
        return obj

    def require_namespace(self, namespace: str) -> None:
        # NamespaceLifecycle admission: objects only in a namespace that exists.
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
        options: WriteOptions,
    ) -> JsonObject:
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        object_meta.check_type(resource, body)
        strategy = strategy_for(resource)
        obj = copy.deepcopy(body)
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        strategy.decode(resource, obj, options.validation)
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
        strategy.validate_name(resource, name)
        object_meta.validate_labels(resource, name, meta)
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
        if strategy.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        strategy.prepare_for_create(resource, obj)
        strategy.validate(resource, obj)
        if options.dry_run:
            return obj
        stored = self.store.put(resource.storage_key, obj)
        strategy.after_create(self, stored)
        for observer in list(self.create_observers):
            observer(stored)
        return stored

    def _generate_name(self, resource: ResourceType, namespace: str, prefix: str) -> str:
        for _ in range(16):
            name = prefix[:58] + "".join(random.choices(_GENERATE_ALPHABET, k=5))
            if self.store.get(resource.storage_key, namespace, name) is None:
                return name
        raise errors.already_exists(resource.group, resource.plural, prefix)

    # ------------------------------------------------------------ updating

    def update(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        options: WriteOptions,
        subresource: str | None = None,
    ) -> JsonObject:
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise errors.bad_request("the request body must be a JSON object with metadata")
        object_meta.check_type(resource, body)
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
        if not wanted_version and not strategy_for(resource).allows_unconditional_update:
            raise errors.invalid(
                resource.group,
                resource.plural,
                name,
                "metadata.resourceVersion",
                "Invalid value: 0: must be specified for an update",
            )
        if wanted_version and str(wanted_version) != existing["metadata"]["resourceVersion"]:
            raise errors.conflict(resource.group, resource.plural, name)
        return self._write_update(resource, existing, body, options, subresource)

    def _write_update(
        self,
        resource: ResourceType,
        existing: JsonObject,
        body: JsonObject,
        options: WriteOptions,
        subresource: str | None,
    ) -> JsonObject:
        old_meta = existing["metadata"]
        name = old_meta["name"]
        strategy = strategy_for(resource)
        body = copy.deepcopy(body)
        body.setdefault("metadata", {})
        strategy.decode(resource, body, options.validation)
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
            object_meta.validate_labels(resource, name, meta)
            strategy.prepare_for_update(resource, updated, existing)
        updated["apiVersion"] = resource.api_version
        updated["kind"] = resource.kind
        strategy.validate_update(resource, updated, existing, subresource)
        meta = updated["metadata"]
        if strategy.has_generation and _spec_part(updated) != _spec_part(existing):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if old_meta.get("deletionTimestamp"):
            # Like the real server: no new finalizers once deletion has started.
            old_finalizers = set(old_meta.get("finalizers") or [])
            if set(meta.get("finalizers") or []) - old_finalizers:
                raise errors.StatusError(
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
        if options.dry_run:
            return updated
        stored = self.store.put(resource.storage_key, updated)
        strategy.after_update(self, stored)
        if (
            stored["metadata"].get("deletionTimestamp")
            and not stored["metadata"].get("finalizers")
            and not stored["metadata"].get("deletionGracePeriodSeconds")
        ):
            # kube's shouldDeleteDuringUpdate: the last finalizer gone and no grace period
            # pending (a pod in graceful deletion waits for its kubelet).
            return self.remove(resource, stored)
        return stored

    def patch(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        raw: bytes,
        options: WriteOptions,
        subresource: str | None = None,
    ) -> tuple[JsonObject, int]:
        """The patched object and the status code: 201 when an apply created it."""
        media = content_type.split(";")[0].strip().lower()
        if media == patches.APPLY_PATCH:
            return self._apply(resource, namespace, name, raw, options, subresource)
        if options.force:
            raise patch_requests.options_invalid(
                "force", "Forbidden", "may not be specified for non-apply patch"
            )
        document = patch_requests.decoded_patch(media, raw)
        namespace = namespace if resource.namespaced else ""
        existing = self.get(resource, namespace, name)
        patched = patch_requests.patched_object(resource, existing, media, document)
        options.validation.patched = patched
        updated = self._write_update(resource, existing, patched, options, subresource)
        return updated, 200

    def _apply(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        raw: bytes,
        options: WriteOptions,
        subresource: str | None,
    ) -> tuple[JsonObject, int]:
        field_manager = options.field_manager
        if not field_manager:
            raise patch_requests.options_invalid(
                "fieldManager", "Required value", "is required for apply patch"
            )
        config = patch_requests.applied_configuration(resource, name, raw)
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
            created = self.create(resource, namespace or None, body, options)
            return created, 201
        managed = list(existing["metadata"].get("managedFields") or [])
        found = apply.conflicts(existing, config, field_manager, managed)
        if found and options.force:
            managed = apply.taken_over(managed, field_manager, found)
            found = []
        if found:
            raise patch_requests.apply_conflicts(found)
        merged = apply.merged_object(existing, config, field_manager, managed, resource.schema)
        merged["metadata"]["managedFields"] = apply.with_entry(managed, entry)
        updated = self._write_update(resource, existing, merged, options, subresource)
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
        strategy = strategy_for(resource)
        strategy.check_delete(resource, existing)
        if options.dry_run:
            return existing
        policy_finalizer = PROPAGATION_FINALIZERS.get(options.propagation_policy or "")
        if policy_finalizer is not None and strategy.propagates_by_finalizer:
            # Like the real server: the garbage collector finishes these deletions (it orphans
            # or deletes the dependents, then removes the finalizer).
            return self._defer_for_collector(resource, existing, policy_finalizer)
        if options.propagation_policy == "Orphan":
            self._orphan_dependents(meta.get("uid", ""))
        return strategy.delete(self, resource, existing, options)

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
        self.remove(resource, stored)

    def orphan_dependents(self, owner_uid: str) -> None:
        self._orphan_dependents(owner_uid)

    def bind(self, namespace: str, name: str, binding: Any) -> JsonObject:
        return pods.bind(self, namespace, name, binding)

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
            except errors.StatusError as error:
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
        except errors.StatusError as error:
            if error.code != 404:
                raise

    def remove(self, resource: ResourceType, obj: JsonObject) -> JsonObject:
        """Take the object out of the store, with what its kind takes along."""
        meta = obj["metadata"]
        strategy_for(resource).before_remove(self, obj)
        final = self.store.remove(resource.storage_key, meta.get("namespace", ""), meta["name"])
        return final if final is not None else obj

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
