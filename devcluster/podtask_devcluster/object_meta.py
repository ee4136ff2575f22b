"""What every object's metadata and type information must satisfy, whatever its kind (kube's
`ValidateObjectMeta` and the decoder's kind check): names as DNS subdomains or labels, label
keys and values, and a body's `kind`/`apiVersion` matching the resource it is sent to."""

from __future__ import annotations

import re

from podtask_devcluster import errors
from podtask_devcluster.discovery import ResourceType
from podtask_devcluster.store import JsonObject

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def validate_label_name(resource: ResourceType, name: str) -> None:
    """A name that must be an RFC 1123 label (namespaces)."""
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise _invalid_name(resource, name, "label", "lower case alphanumeric characters or '-'")


def validate_subdomain_name(resource: ResourceType, name: str) -> None:
    """A name that must be an RFC 1123 subdomain (most kinds)."""
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise _invalid_name(
            resource, name, "subdomain", "lower case alphanumeric characters, '-' or '.'"
        )


def _invalid_name(resource: ResourceType, name: str, form: str, allowed: str) -> errors.StatusError:
    return errors.invalid(
        resource.group,
        resource.kind,
        name,
        "metadata.name",
        f'Invalid value: "{name}": a lowercase RFC 1123 {form} must consist of {allowed}, '
        "and must start and end with an alphanumeric character",
    )


def validate_labels(resource: ResourceType, name: str, meta: JsonObject) -> None:
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


def check_type(resource: ResourceType, body: JsonObject) -> None:
    """400 when the body names another kind or API group than the resource it is sent to."""
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
