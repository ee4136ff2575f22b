"""Custom resources against their CRD's structural schema, the way kube-apiserver treats them:
pruning of unknown fields (with the paths `fieldValidation=Strict|Warn` report), removal of
non-nullable nulls, defaulting, and validation (types, formats, bounds, enums, required
properties, list invariants) with field errors worded and placed as kube-openapi and
apimachinery's `field` package word them. `x-kubernetes-validations` rules are in `cel_rules`.

Pure functions over decoded JSON and the CRD's `openAPIV3Schema`; nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import ipaddress
import json
import re
import uuid
from collections.abc import Callable
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


def _join(path: str, key: str) -> str:
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
                _prune(value[key], _property_schema(schema, key), _join(path, key), unknown, False)
            else:
                unknown.append(_join(path, key))
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
                _prune(item, _property_schema(schema, key), _join(path, key), unknown, False)
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


# ---------------------------------------------------------------- validation


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_matches(expected: str, value: Any) -> bool:
    actual = _json_type(value)
    if expected == actual:
        return True
    if expected == "number" and actual == "integer":
        return True
    # kube-openapi takes a float64 for an integer only where JSON integers are exact (2^53).
    return (
        expected == "integer"
        and actual == "number"
        and float(value).is_integer()
        and abs(value) <= 2**53
    )


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_UUID = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_HOSTNAME = re.compile(
    r"^([a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}"
    r"[a-zA-Z0-9])?)*\.?$"
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def _valid_date_time(text: str) -> bool:
    if not _DATE_TIME.match(text):
        return False
    try:
        dt.datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def _valid_date(text: str) -> bool:
    if not _DATE.match(text):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _valid_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _valid_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _valid_byte(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _valid_uuid(text: str) -> bool:
    if not _UUID.match(text):
        return False
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


# The formats kube-apiserver checks (apiextensions' supported formats); others are not checked.
FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": _valid_date_time,
    "datetime": _valid_date_time,
    "date": _valid_date,
    "uuid": _valid_uuid,
    "byte": _valid_byte,
    "ipv4": lambda t: _valid_ip(t, 4),
    "ipv6": lambda t: _valid_ip(t, 6),
    "cidr": _valid_cidr,
    "hostname": lambda t: bool(_HOSTNAME.match(t)) and len(t) <= 255,
    "email": lambda t: bool(_EMAIL.match(t)),
}


def _pattern(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


@dataclass
class _Validation:
    errors: list[FieldError]
    # Field paths start here; messages name the path below it (kube validates /status writes
    # against the status schema alone, and its messages say "count in body", not
    # "status.count in body").
    prefix: str = ""

    def add(self, kind: str, path: str, value: Any, detail: str) -> None:
        if self.prefix and path != "<nil>":
            path = f"{self.prefix}.{path}" if path else self.prefix
        self.errors.append(FieldError(kind, path, value, detail))

    def node(self, value: Any, schema: Schema, path: str, old: Any, has_old: bool) -> None:
        # Ratcheting (GA since 1.33): on update, a value equal to the old one is not judged again.
        if has_old and value == old:
            return
        name = path or "."
        where = f"{name} in body"
        if schema.get("x-kubernetes-int-or-string"):
            is_int = isinstance(value, int) and not isinstance(value, bool)
            if not (is_int or isinstance(value, str)):
                actual = _json_type(value)
                self.add(
                    TYPE_INVALID,
                    path,
                    actual,
                    f"{where} must be of type integer,string: {go_quote(actual)}",
                )
                return
        expected = schema.get("type")
        if value is None:
            if expected and not schema.get("nullable"):
                self.add(TYPE_INVALID, path, "null", f'{where} must be of type {expected}: "null"')
            self._enum(value, schema, path)
            return
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if expected and not _type_matches(expected, value):
            actual = _json_type(value)
            self.add(
                TYPE_INVALID,
                path,
                actual,
                f"{where} must be of type {expected}: {go_quote(actual)}",
            )
            # kube-openapi's number checks run on any number, whatever the type check said.
            if numeric and expected in ("integer", "number"):
                self._number(value, schema, path, where)
            self._enum(value, schema, path)
            return
        self._combinators(value, schema, path, old, has_old)
        if isinstance(value, str):
            self._string(value, schema, path, where)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self._number(value, schema, path, where)
        elif isinstance(value, list):
            self._array(value, schema, path, where, old if has_old else None)
        self._enum(value, schema, path)
        if isinstance(value, dict):
            self._object(value, schema, path, where, old if has_old else None)

    def _combinators(self, value: Any, schema: Schema, path: str, old: Any, has_old: bool) -> None:
        label = go_quote(path or ".")
        for sub in schema.get("allOf") or []:
            self.node(value, sub, path, old, has_old)
        if schema.get("anyOf") and not any(_passes(value, sub, path) for sub in schema["anyOf"]):
            self.add(INVALID, path, value, f"{label} must validate at least one schema (anyOf)")
        if schema.get("oneOf"):
            passed = sum(1 for sub in schema["oneOf"] if _passes(value, sub, path))
            if passed != 1:
                self.add(
                    INVALID, path, value, f"{label} must validate one and only one schema (oneOf). "
                )
        if isinstance(schema.get("not"), dict) and _passes(value, schema["not"], path):
            self.add(INVALID, path, value, f"{label} must not validate the schema (not)")

    def _string(self, value: str, schema: Schema, path: str, where: str) -> None:
        self._string_bounds(value, schema, path, where)
        check = FORMATS.get(str(schema.get("format", "")))
        if check is not None and not check(value):
            self.add(
                TYPE_INVALID,
                path,
                value,
                f"{where} must be of type {schema['format']}: {go_quote(value)}",
            )

    def _string_bounds(self, value: str, schema: Schema, path: str, where: str) -> None:
        """maxLength, minLength, pattern: kube-openapi reports the first that fails."""
        length = len(value)
        if "maxLength" in schema and length > int(schema["maxLength"]):
            self.add(TOO_LONG, path, OMIT, _too_long(int(schema["maxLength"])))
            return
        if "minLength" in schema and length < int(schema["minLength"]):
            self.add(
                INVALID,
                path,
                value,
                f"{where} should be at least {int(schema['minLength'])} chars long",
            )
            return
        if "pattern" in schema:
            compiled = _pattern(str(schema["pattern"]))
            if compiled is not None and not compiled.search(value):
                self.add(INVALID, path, value, f"{where} should match '{schema['pattern']}'")

    def _number(self, value: float, schema: Schema, path: str, where: str) -> None:
        if schema.get("type") == "integer" and not _fits_integer(value, schema.get("format")):
            form = schema.get("format")
            described = f"with format {form}" if form else "(default format)"
            self.add(
                INVALID,
                "<nil>",
                "",
                f"Checked value must be of type integer {described} in {path or '.'}",
            )
        if "multipleOf" in schema:
            factor = schema["multipleOf"]
            if factor and (Decimal(repr(value)) % Decimal(repr(factor))) != 0:
                self.add(
                    INVALID, path, value, f"{where} should be a multiple of {go_value(factor)}"
                )
        if "maximum" in schema:
            bound = float(schema["maximum"])
            if schema.get("exclusiveMaximum") and value >= bound:
                self.add(INVALID, path, value, f"{where} should be less than {go_float(bound)}")
            elif value > bound:
                self.add(
                    INVALID,
                    path,
                    value,
                    f"{where} should be less than or equal to {go_float(bound)}",
                )
        if "minimum" in schema:
            bound = float(schema["minimum"])
            if schema.get("exclusiveMinimum") and value <= bound:
                self.add(INVALID, path, value, f"{where} should be greater than {go_float(bound)}")
            elif value < bound:
                self.add(
                    INVALID,
                    path,
                    value,
                    f"{where} should be greater than or equal to {go_float(bound)}",
                )

    def _array(self, value: list[Any], schema: Schema, path: str, where: str, old: Any) -> None:
        if "maxItems" in schema and len(value) > int(schema["maxItems"]):
            self.add(TOO_MANY, path, len(value), _too_many(int(schema["maxItems"])))
        if "minItems" in schema and len(value) < int(schema["minItems"]):
            self.add(
                INVALID,
                path,
                len(value),
                f"{where} should have at least {int(schema['minItems'])} items",
            )
        if schema.get("uniqueItems") and _has_duplicates(value):
            self.add(INVALID, path, "", f"{where} shouldn't contain duplicates")
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                self.node(item, items, f"{path}[{index}]", None, False)
        self._list_type(value, schema, path)

    def _list_type(self, value: list[Any], schema: Schema, path: str) -> None:
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set":
            seen: list[Any] = []
            for index, item in enumerate(value):
                if item in seen:
                    self.add(DUPLICATE, f"{path}[{index}]", item, "")
                else:
                    seen.append(item)
        elif list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen_keys: list[Any] = []
            for index, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                key = {k: item.get(k) for k in keys}
                if key in seen_keys:
                    self.add(DUPLICATE, f"{path}[{index}]", key, "")
                else:
                    seen_keys.append(key)

    def _enum(self, value: Any, schema: Schema, path: str) -> None:
        allowed = schema.get("enum")
        if allowed is None or any(value == option for option in allowed):
            return
        shown = [o if isinstance(o, str) else json.dumps(o) for o in allowed]
        detail = "supported values: " + ", ".join(go_quote(s) for s in shown) if shown else ""
        self.add(NOT_SUPPORTED, path, value, detail)

    def _object(
        self, value: dict[str, Any], schema: Schema, path: str, where: str, old: Any
    ) -> None:
        count = len(value)
        if "maxProperties" in schema and count > int(schema["maxProperties"]):
            self.add(TOO_MANY, path, count, _too_many(int(schema["maxProperties"])))
        if "minProperties" in schema and count < int(schema["minProperties"]):
            self.add(
                INVALID,
                path,
                count,
                f"{where} should have at least {int(schema['minProperties'])} properties",
            )
        old_map = old if isinstance(old, dict) else None
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if not path and not self.prefix and key in META_FIELDS:
                continue
            child = properties.get(key)
            if child is None and isinstance(additional, dict):
                child = additional
            if child is None:
                continue
            has_old = old_map is not None and key in old_map
            self.node(item, child, _join(path, key), old_map.get(key) if old_map else None, has_old)
        for key in schema.get("required") or []:
            if key not in value:
                self.add(REQUIRED, _join(path, key), None, "")


def _fits_integer(value: float, form: Any) -> bool:
    if isinstance(value, float) and not value.is_integer():
        return False
    low, high = (-(2**31), 2**31 - 1) if form == "int32" else (INT64_MIN, INT64_MAX)
    if form == "uint32":
        low, high = 0, 2**32 - 1
    return low <= value <= high


def _too_long(limit: int) -> str:
    return f"may not be more than {limit} {'byte' if limit == 1 else 'bytes'}"


def _too_many(limit: int) -> str:
    return f"must have at most {limit} {'item' if limit == 1 else 'items'}"


def _has_duplicates(values: list[Any]) -> bool:
    seen: list[Any] = []
    for item in values:
        if item in seen:
            return True
        seen.append(item)
    return False


def _passes(value: Any, schema: Schema, path: str) -> bool:
    probe = _Validation([])
    probe.node(value, schema, path, None, False)
    return not probe.errors


def validate(obj: Any, schema: Schema, old: Any = None, prefix: str = "") -> list[FieldError]:
    """The field errors of a custom resource (root `metadata` is the registry's business).
    With `old` (an update), values unchanged from it are not judged again (ratcheting).
    With `prefix`, `obj` is the part of the object under that field (a /status write)."""
    validation = _Validation([], prefix)
    validation.node(obj, schema, "", old, old is not None)
    return validation.errors


def has_blocking(errors: list[FieldError]) -> bool:
    return any(error.type in BLOCKING for error in errors)
