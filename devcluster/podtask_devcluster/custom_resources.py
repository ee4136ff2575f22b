"""What kube-apiserver does to a custom resource between decoding and storage: prune what its
CRD's schema does not declare (reported per `fieldValidation`), drop non-nullable nulls, apply
defaults, then validate against the schema and its CEL rules and answer 422 Invalid with the
causes as kube-apiserver words them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from podtask_devcluster import errors
from podtask_devcluster.cel_rules import validate_rules
from podtask_devcluster.discovery import ResourceType
from podtask_devcluster.schema import (
    INVALID,
    FieldError,
    apply_defaults,
    has_blocking,
    prune,
    prune_nulls,
    validate,
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

    @classmethod
    def parse(cls, value: str | None) -> FieldValidation:
        if value in (None, ""):
            return cls()
        if value not in (STRICT, WARN, IGNORE):
            raise errors.bad_request(
                f"fieldValidation parameter unsupported: {value}. Valid values are Ignore, "
                "Warn and Strict"
            )
        return cls(directive=str(value))

    def report(self, resource: ResourceType, problems: list[str]) -> None:
        problems = [*self.decode_problems, *problems]
        self.decode_problems = []
        if not problems or self.directive == IGNORE:
            return
        if self.directive == STRICT:
            raise errors.bad_request(
                f'{resource.kind} in version "{resource.version}" cannot be handled as a '
                f"{resource.kind}: strict decoding error: {', '.join(problems)}"
            )
        self.warnings.extend(problems)


def decode(resource: ResourceType, obj: dict[str, Any], validation: FieldValidation) -> None:
    """Prune, drop nulls and default `obj` in place, as decoding a custom resource does."""
    schema = resource.schema
    if schema is None:
        validation.report(resource, [])
        return
    unknown = prune(obj, schema)
    validation.report(resource, [f'unknown field "{path}"' for path in unknown])
    prune_nulls(obj, schema)
    apply_defaults(obj, schema)


def check(
    resource: ResourceType, name: str, obj: dict[str, Any], old: dict[str, Any] | None
) -> None:
    """422 Invalid when `obj` breaks its schema or a CEL rule (`old` on update: ratcheting
    and transition rules)."""
    schema = resource.schema
    if schema is None:
        return
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


def invalid(resource: ResourceType, name: str, found: list[FieldError]) -> errors.ApiError:
    """`errors.NewInvalid`: the message aggregates the errors, one cause per error."""
    messages: list[str] = []
    for error in found:
        if error.message() not in messages:
            messages.append(error.message())
    summary = messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
    qualified = f"{resource.kind}.{resource.group}" if resource.group else resource.kind
    return errors.ApiError(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {summary}',
        name=name,
        group=resource.group,
        kind=resource.kind,
        causes=[
            {"reason": error.type, "message": error.body(), "field": error.field} for error in found
        ],
    )
