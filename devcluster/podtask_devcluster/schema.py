"""Custom resources against their CRD's structural schema as kube-apiserver decodes them:
pruning of unknown fields (with the paths `fieldValidation=Strict|Warn` report), removal of
non-nullable nulls and defaulting; JSON numbers as kube keeps them; and the vocabulary of
field errors (`FieldError`, the cause reasons, Go's way of printing values) that
`schema_validation` and `cel_rules` word their errors in.

Pure functions over decoded JSON and the CRD's `openAPIV3Schema`; nothing here does I/O.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

Schema = dict[str, Any]

# apimachinery's field.ErrorType values: the `reason` of a Status cause.
REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
TYPE_INVALID = "FieldValueTypeInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
FORBIDDEN = "FieldValueForbidden"
DUPLICATE = "FieldValueDuplicate"

_LABELS = {
    REQUIRED: "Required value",
    INVALID: "Invalid value",
    TYPE_INVALID: "Invalid value",
    NOT_SUPPORTED: "Unsupported value",
    TOO_LONG: "Too long",
    TOO_MANY: "Too many",
    FORBIDDEN: "Forbidden",
    DUPLICATE: "Duplicate value",
}
# These types print no value (apimachinery's ErrorBody).
_VALUELESS = (REQUIRED, FORBIDDEN, TOO_LONG)
# The errors after which kube-apiserver does not run CEL rules (strategy.hasBlockingErr).
BLOCKING = (NOT_SUPPORTED, REQUIRED, TOO_LONG, TOO_MANY, TYPE_INVALID)
META_FIELDS = ("apiVersion", "kind", "metadata")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class _Omit:
    """apimachinery's omitValue: the error prints its type without a value."""


OMIT: Any = _Omit()


@dataclass(frozen=True)
class FieldError:
    type: str
    field: str
    value: Any
    detail: str

    def body(self) -> str:
        """`field.Error.ErrorBody()`: the cause's message."""
        label = _LABELS[self.type]
        if self.type in _VALUELESS or self.value is OMIT:
            text = label
        else:
            text = f"{label}: {go_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def message(self) -> str:
        return f"{self.field}: {self.body()}"


# ---------------------------------------------------------------- Go formatting


def go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def go_float(number: float) -> str:
    """Go's `%v` of a float64 (strconv 'g', shortest): exponent form below 1e-4 or from 1e6."""
    if number != number:
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "+Inf" if number > 0 else "-Inf"
    if number == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(number)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(str(d) for d in digits)
    point = exponent + len(text)
    power = point - 1
    prefix = "-" if sign else ""
    # strconv's 'g' with the shortest precision switches to an exponent from 1e+06.
    if power < -4 or power >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def go_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_quote(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------- numbers as stored


def decoded_numbers(value: Any) -> Any:
    """JSON numbers as kube-apiserver decodes a request: an integer beyond int64 is a float64."""
    if isinstance(value, dict):
        return {k: decoded_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decoded_numbers(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return value if INT64_MIN <= value <= INT64_MAX else float(value)
    return value


def stored_numbers(value: Any) -> Any:
    """JSON numbers as kube-apiserver keeps them: int64, else float64; a float64 that Go
    writes without a fraction or exponent (integral, below 1e21) reads back as an int64."""
    if isinstance(value, dict):
        return {k: stored_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [stored_numbers(v) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if INT64_MIN <= value <= INT64_MAX:
            return value
        value = float(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            # Go writes it without exponent, its shortest digits padded with zeros.
            return int(Decimal(repr(value)))
        return value
    return value


# ---------------------------------------------------------------- pruning and defaulting


def _property_schema(schema: Schema | None, key: str) -> Schema | None:
    if schema is None:
        return None
    properties = schema.get("properties") or {}
    if key in properties:
        return properties[key]  # type: ignore[no-any-return]
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        return additional
    return None


def _known_key(schema: Schema, key: str) -> bool:
    return key in (schema.get("properties") or {}) or isinstance(
        schema.get("additionalProperties"), dict
    )


def prune(obj: Any, schema: Schema) -> list[str]:
    """Drop every field the schema does not declare; return their paths, sorted (the paths
    `fieldValidation` reports as unknown fields). apiVersion, kind and metadata stay at the
    root and in embedded resources."""
    unknown: list[str] = []
    _prune(obj, schema, "", unknown, root=True)
    return sorted(unknown)


def join_path(path: str, key: str) -> str:
    """A field path one key deeper, as kube's field.Path prints it."""
    return f"{path}.{key}" if path else key


def _prune(value: Any, schema: Schema | None, path: str, unknown: list[str], root: bool) -> None:
    if schema is not None and schema.get("x-kubernetes-preserve-unknown-fields"):
        _prune_declared(value, schema, path, unknown)
        return
    embedded = bool(schema and schema.get("x-kubernetes-embedded-resource"))
    if isinstance(value, dict):
        for key in list(value):
            if (root or embedded) and key in META_FIELDS:
                continue
            if schema is not None and _known_key(schema, key):
                _prune(
                    value[key], _property_schema(schema, key), join_path(path, key), unknown, False
                )
            else:
                unknown.append(join_path(path, key))
                del value[key]
    elif isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        for index, item in enumerate(value):
            _prune(item, items, f"{path}[{index}]", unknown, False)


def _prune_declared(value: Any, schema: Schema, path: str, unknown: list[str]) -> None:
    """Under x-kubernetes-preserve-unknown-fields: unknown keys stay, declared ones are pruned
    by their own schema."""
    embedded = bool(schema.get("x-kubernetes-embedded-resource"))
    if isinstance(value, dict):
        for key, item in value.items():
            if embedded and key in META_FIELDS:
                continue
            if _known_key(schema, key):
                _prune(item, _property_schema(schema, key), join_path(path, key), unknown, False)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            _prune_declared(item, schema["items"], f"{path}[{index}]", unknown)


def _nullable_or_defaulted(schema: Schema | None) -> bool:
    return schema is None or bool(schema.get("nullable")) or "default" in schema


def prune_nulls(value: Any, schema: Schema | None) -> None:
    """kube's PruneNonNullableNullsWithoutDefaults: a null map value that the schema neither
    allows (nullable) nor defaults is dropped, as if it had not been sent."""
    if isinstance(value, dict):
        for key in list(value):
            child = _property_schema(schema, key)
            if value[key] is None and child is not None and not _nullable_or_defaulted(child):
                del value[key]
            else:
                prune_nulls(value[key], child)
    elif isinstance(value, list):
        items = schema.get("items") if schema is not None else None
        for item in value:
            prune_nulls(item, items)


def _non_nullable_null(value: Any, schema: Schema) -> bool:
    return value is None and not schema.get("nullable")


def apply_defaults(value: Any, schema: Schema | None) -> None:
    """Structural defaulting: absent (or non-nullable null) properties take their default."""
    if schema is None:
        return
    if isinstance(value, dict):
        for key, declared in (schema.get("properties") or {}).items():
            if "default" in declared and (
                key not in value or _non_nullable_null(value[key], declared)
            ):
                value[key] = copy.deepcopy(declared["default"])
        additional = schema.get("additionalProperties")
        for key, item in list(value.items()):
            child = _property_schema(schema, key)
            if child is None:
                continue
            if (
                isinstance(additional, dict)
                and child is additional
                and "default" in additional
                and _non_nullable_null(item, additional)
            ):
                value[key] = copy.deepcopy(additional["default"])
            apply_defaults(value[key], child)
    elif isinstance(value, list):
        items = schema.get("items")
        if not isinstance(items, dict):
            return
        for index, item in enumerate(value):
            if "default" in items and _non_nullable_null(item, items):
                value[index] = copy.deepcopy(items["default"])
            apply_defaults(value[index], items)
