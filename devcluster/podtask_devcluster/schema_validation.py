"""Custom resources validated against their CRD's structural schema, as kube-openapi's
validator does it: types, formats, string, number and list bounds, enums, required
properties, list invariants (`x-kubernetes-list-type`), the combinators and ratcheting of
unchanged values on update, each error worded and placed as apimachinery's `field` package
words it. Pruning and defaulting happen before, in `schema`; `x-kubernetes-validations` rules
are `cel_rules`'s.

Pure functions over decoded JSON and the CRD's `openAPIV3Schema`; nothing here does I/O.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from podtask_devcluster.schema import (
    BLOCKING,
    DUPLICATE,
    INT64_MAX,
    INT64_MIN,
    INVALID,
    META_FIELDS,
    NOT_SUPPORTED,
    OMIT,
    REQUIRED,
    TOO_LONG,
    TOO_MANY,
    TYPE_INVALID,
    FieldError,
    Schema,
    go_float,
    go_quote,
    go_value,
    join_path,
)


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


def _parses(parse: Callable[[str], object], text: str) -> bool:
    """Whether `parse` takes `text` (a ValueError says it does not)."""
    try:
        parse(text)
    except ValueError:
        return False
    return True


def _date_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))


def _ip_version(text: str) -> int | None:
    try:
        return ipaddress.ip_address(text).version
    except ValueError:
        return None


def _valid_date_time(text: str) -> bool:
    return bool(_DATE_TIME.match(text)) and _parses(_date_time, text)


# The formats kube-apiserver checks (apiextensions' supported formats); others are not checked.
FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": _valid_date_time,
    "datetime": _valid_date_time,
    "date": lambda t: bool(_DATE.match(t)) and _parses(dt.date.fromisoformat, t),
    "uuid": lambda t: bool(_UUID.match(t)) and _parses(uuid.UUID, t),
    "byte": lambda t: _parses(lambda b: base64.b64decode(b, validate=True), t),
    "ipv4": lambda t: _ip_version(t) == 4,
    "ipv6": lambda t: _ip_version(t) == 6,
    "cidr": lambda t: "/" in t and _parses(lambda n: ipaddress.ip_network(n, strict=False), t),
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
            self.node(
                item, child, join_path(path, key), old_map.get(key) if old_map else None, has_old
            )
        for key in schema.get("required") or []:
            if key not in value:
                self.add(REQUIRED, join_path(path, key), None, "")


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
