"""Request bodies as kube-apiserver decodes them, free of I/O: the size limit, JSON or YAML
by content type (protobuf refused), duplicate fields noted for `fieldValidation`, numbers
kept as JSON has them, and a DELETE's options from its body and query."""

from __future__ import annotations

import json
from typing import Any

import yaml

from podtask_devcluster import errors
from podtask_devcluster.custom_resources import FieldValidation
from podtask_devcluster.request_options import DeleteOptions
from podtask_devcluster.schema import decoded_numbers
from podtask_devcluster.store import JsonObject

# kube-apiserver's MaxRequestBodyBytes: a larger body is refused before it is decoded.
MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024


def within_limit(raw: bytes) -> bytes:
    if len(raw) > MAX_REQUEST_BODY_BYTES:
        raise errors.StatusError(
            413,
            "RequestEntityTooLarge",
            f"Request entity too large: limit is {MAX_REQUEST_BODY_BYTES}",
        )
    return raw


def decoded_body(raw: bytes, content_type: str, validation: FieldValidation) -> Any:
    """The body of a create or update; fields sent twice go to `validation`."""
    if "protobuf" in content_type:
        raise errors.unsupported_media_type(
            "the podtask dev cluster speaks JSON only, not protobuf"
        )
    try:
        if "yaml" in content_type:
            return yaml.safe_load(raw)
        decoded = json.loads(raw or b"null", object_pairs_hook=_KeyRecorder)
    except (ValueError, yaml.YAMLError) as error:
        raise errors.bad_request(f"the request body does not decode: {error}") from error
    validation.decode_problems.extend(
        f'duplicate field "{path}"' for path in _duplicate_paths(decoded, "")
    )
    return decoded_numbers(_plain(decoded))


def delete_options(raw: bytes, params: dict[str, str]) -> DeleteOptions:
    """DeleteOptions from the body, else the query (`orphanDependents` as `Orphan`)."""
    body: JsonObject = {}
    if raw.strip():
        try:
            decoded = json.loads(raw)
        except ValueError as error:
            raise errors.bad_request(f"invalid DeleteOptions: {error}") from error
        if isinstance(decoded, dict):
            body = decoded
    grace: Any = body.get("gracePeriodSeconds", params.get("gracePeriodSeconds"))
    policy = body.get("propagationPolicy") or params.get("propagationPolicy")
    orphan = body.get("orphanDependents", params.get("orphanDependents"))
    if policy is None and orphan in (True, "true"):
        policy = "Orphan"
    preconditions = body.get("preconditions") or {}
    dry_run = bool(body.get("dryRun") or params.get("dryRun"))
    try:
        grace_seconds = int(grace) if grace not in (None, "") else None
    except (TypeError, ValueError) as error:
        raise errors.bad_request(f"invalid gracePeriodSeconds {grace!r}") from error
    return DeleteOptions(
        grace_period_seconds=grace_seconds,
        propagation_policy=policy,
        precondition_uid=preconditions.get("uid"),
        precondition_resource_version=preconditions.get("resourceVersion"),
        dry_run=dry_run,
    )


class _KeyRecorder(dict[str, Any]):
    """A decoded JSON object that remembers the keys sent more than once."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        seen: set[str] = set()
        self.duplicates: list[str] = []
        for key, _ in pairs:
            if key in seen and key not in self.duplicates:
                self.duplicates.append(key)
            seen.add(key)


def _duplicate_paths(value: Any, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, _KeyRecorder):
        found += [f"{path}.{key}" if path else key for key in value.duplicates]
        for key, item in value.items():
            found += _duplicate_paths(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _duplicate_paths(item, f"{path}[{index}]")
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
