"""A PATCH request's body turned into the object to write, free of I/O: the patch document
decoded by media type (JSON, merge, strategic merge) and applied to the stored object, a
server-side apply configuration decoded from YAML, and the 4xx answers kube gives for a bad
patch, bad PatchOptions or conflicting field managers. The write itself is `registry`'s."""

from __future__ import annotations

import json
from typing import Any

import yaml

from podtask_devcluster import errors, object_meta, patches
from podtask_devcluster.discovery import ResourceType
from podtask_devcluster.schema import decoded_numbers
from podtask_devcluster.store import JsonObject


def decoded_patch(media: str, raw: bytes) -> Any:
    """The patch document of a JSON, merge or strategic merge patch (415 for another type)."""
    if media not in (patches.MERGE_PATCH, patches.JSON_PATCH, patches.STRATEGIC_MERGE_PATCH):
        raise errors.unsupported_media_type(
            f"the body of the request was in an unknown format - accepted media types "
            f"include: {patches.JSON_PATCH}, {patches.MERGE_PATCH}, "
            f"{patches.STRATEGIC_MERGE_PATCH}"
        )
    try:
        return decoded_numbers(json.loads(raw or b"null"))
    except ValueError as error:
        raise errors.bad_request(f"invalid JSON in the patch body: {error}") from error


def patched_object(
    resource: ResourceType, existing: JsonObject, media: str, document: Any
) -> JsonObject:
    """`existing` with the patch applied; 422 if it does not apply or leaves no object, 409
    if it names another resourceVersion than the stored one."""
    name = existing["metadata"]["name"]
    try:
        if media == patches.JSON_PATCH:
            patched = patches.json_patch(existing, document)
        elif media == patches.MERGE_PATCH:
            patched = patches.merge_patch(existing, document)
        else:
            patched = patches.strategic_merge_patch(existing, document)
    except patches.PatchError as error:
        message = f"the patch could not be applied: {error}"
        raise errors.StatusError(422, "Invalid", message) from error
    if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
        raise errors.StatusError(422, "Invalid", "the patch must leave an object with metadata")
    patched_meta = patched["metadata"]
    if patched_meta.get("name", name) != name:
        raise errors.bad_request("a patch cannot change metadata.name")
    if (
        patched_meta.get("resourceVersion")
        and str(patched_meta["resourceVersion"]) != existing["metadata"]["resourceVersion"]
    ):
        raise errors.conflict(resource.group, resource.plural, name)
    return patched


def applied_configuration(resource: ResourceType, name: str, raw: bytes) -> JsonObject:
    """A server-side apply body: a YAML (or JSON) object of this resource, named `name`."""
    try:
        config = decoded_numbers(yaml.safe_load(raw or b""))
    except yaml.YAMLError as error:
        raise errors.bad_request(f"error decoding YAML: {error}") from error
    if not isinstance(config, dict):
        raise errors.bad_request("the applied configuration must be an object")
    object_meta.check_type(resource, config)
    config.setdefault("metadata", {})
    if not isinstance(config["metadata"], dict):
        raise errors.bad_request("metadata must be an object")
    if config["metadata"].get("name", name) != name:
        raise errors.bad_request(
            f"the name of the object ({config['metadata']['name']}) does not match the "
            f"name on the URL ({name})"
        )
    return config


def apply_conflicts(found: list[tuple[str, str]]) -> errors.StatusError:
    """409: fields the apply would take from other managers (without `force`)."""
    listed = "\n".join(f'- conflict with "{who}": {path}' for who, path in found)
    return errors.StatusError(
        409,
        "Conflict",
        f"Apply failed with {len(found)} conflict{'s' if len(found) > 1 else ''}: "
        + (f'conflict with "{found[0][0]}": {found[0][1]}' if len(found) == 1 else "\n" + listed),
        causes=[
            {
                "reason": "FieldManagerConflict",
                "message": f'conflict with "{who}"',
                "field": path,
            }
            for who, path in found
        ],
    )


def options_invalid(field: str, label: str, detail: str) -> errors.StatusError:
    """422 on PatchOptions (`force` without apply, apply without `fieldManager`)."""
    reason = "FieldValueRequired" if label == "Required value" else "FieldValueForbidden"
    return errors.StatusError(
        422,
        "Invalid",
        f'PatchOptions.meta.k8s.io "" is invalid: {field}: {label}: {detail}',
        group="meta.k8s.io",
        kind="PatchOptions",
        causes=[{"reason": reason, "message": f"{label}: {detail}", "field": field}],
    )
