"""What kube-apiserver does to a custom resource between decoding and storage: prune what its
CRD's schema does not declare (reported per `fieldValidation`), drop non-nullable nulls, apply
defaults, then validate against the schema and its CEL rules and answer 422 Invalid with the
causes as kube-apiserver words them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from podtask_devcluster import errors
from podtask_devcluster.cel_rules import validate_rules
from podtask_devcluster.discovery import ResourceType
from podtask_devcluster.schema import (
    INVALID,
    FieldError,
    apply_defaults,
    prune,
    prune_nulls,
)
from podtask_devcluster.schema_validation import has_blocking, validate

OBJECT_META_FIELDS = frozenset(
    (
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    )
)
STRICT = "Strict"
WARN = "Warn"
IGNORE = "Ignore"
_BLOCKED_RULES = FieldError(
    INVALID,
    "<nil>",
    None,
    "some validation rules were not checked because the object was invalid; correct the "
    "existing errors to complete validation",
)


@dataclass
class FieldValidation:
    """The request's `fieldValidation` directive and the warnings it collects."""

    directive: str = WARN
    warnings: list[str] = field(default_factory=list)
    # Problems found while decoding the body (duplicate fields), reported like unknown ones.
    decode_problems: list[str] = field(default_factory=list)
    # A patch's result: strict errors about it are a 422 on the field "patch", as in kube.
    patched: dict[str, Any] | None = None

    @classmethod
    def parse(cls, value: str | None, options_kind: str = "CreateOptions") -> FieldValidation:
        if value is None:
            return cls()
        if value not in ("", STRICT, WARN, IGNORE):
            detail = 'supported values: "", "Ignore", "Strict", "Warn"'
            raise errors.StatusError(
                422,
                "Invalid",
                f'{options_kind}.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: '
                f'"{value}": {detail}',
                group="meta.k8s.io",
                kind=options_kind,
                causes=[
                    {
                        "reason": "FieldValueNotSupported",
                        "message": f'Unsupported value: "{value}": {detail}',
                        "field": "fieldValidation",
                    }
                ],
            )
        return cls(directive=str(value) or WARN)

    def report(self, resource: ResourceType, problems: list[str]) -> None:
        problems = [*self.decode_problems, *problems]
        self.decode_problems = []
        if not problems or self.directive == IGNORE:
            return
        if self.directive == STRICT:
            decoding = f"strict decoding error: {', '.join(problems)}"
            if self.patched is not None:
                shown = json.dumps(
                    self.patched, sort_keys=True, separators=(",", ":"), ensure_ascii=False
                )
                body = f"Invalid value: {json.dumps(shown, ensure_ascii=False)}: {decoding}"
                raise errors.StatusError(
                    422,
                    "Invalid",
                    f' "" is invalid: patch: {body}',
                    causes=[{"reason": "FieldValueInvalid", "message": body, "field": "patch"}],
                )
            raise errors.bad_request(
                f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                f"{resource.kind}: {decoding}"
            )
        self.warnings.extend(problems)


def decode(resource: ResourceType, obj: dict[str, Any], validation: FieldValidation) -> None:
    """Prune, drop nulls and default `obj` in place, as decoding a custom resource does."""
    schema = resource.schema
    if schema is None:
        validation.report(resource, [])
        return
    # kube lists metadata's unknown fields first, then the pruned ones, sorted.
    unknown: list[str] = []
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for key in sorted(set(meta) - OBJECT_META_FIELDS):
            del meta[key]
            unknown.append(f"metadata.{key}")
    unknown += prune(obj, schema)
    validation.report(resource, [f'unknown field "{path}"' for path in unknown])
    prune_nulls(obj, schema)
    apply_defaults(obj, schema)


def check(
    resource: ResourceType,
    name: str,
    obj: dict[str, Any],
    old: dict[str, Any] | None,
    subresource: str | None = None,
) -> None:
    """422 Invalid when `obj` breaks its schema or a CEL rule (`old` on update: ratcheting
    and transition rules). A /status write is checked against the status schema alone (the
    CEL rules still see the whole object)."""
    schema = resource.schema
    if schema is None:
        return
    if subresource == "status":
        status_schema = (schema.get("properties") or {}).get("status")
        found = []
        if isinstance(status_schema, dict) and "status" in obj:
            previous = (old or {}).get("status")
            found = validate(obj["status"], status_schema, previous, prefix="status")
    else:
        found = validate(obj, schema, old)
    if has_blocking(found):
        if _has_rules(schema):
            found.append(_BLOCKED_RULES)
    else:
        found += validate_rules(obj, schema, old)
    if found:
        raise invalid(resource, name, found)


def _has_rules(schema: Any) -> bool:
    if isinstance(schema, dict):
        if schema.get("x-kubernetes-validations"):
            return True
        return any(_has_rules(v) for v in schema.values())
    if isinstance(schema, list):
        return any(_has_rules(v) for v in schema)
    return False


def invalid(resource: ResourceType, name: str, found: list[FieldError]) -> errors.StatusError:
    """`errors.NewInvalid`: the message aggregates the errors, one cause per error."""
    messages: list[str] = []
    for error in found:
        if error.message() not in messages:
            messages.append(error.message())
    summary = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    return errors.StatusError(
        422,
        "Invalid",
        f'{errors.qualified(resource.group, resource.kind)} "{name}" is invalid: {summary}',
        name=name,
        group=resource.group,
        kind=resource.kind,
        causes=[
            {"reason": error.type, "message": error.body(), "field": error.field} for error in found
        ],
    )
