"""`x-kubernetes-validations`: the CEL rules of a CRD's schema, evaluated at every node that
declares them, with `self` (and `oldSelf` for transition rules on update), `message`,
`messageExpression`, `fieldPath` and `reason`, and the field errors kube-apiserver writes.

The CEL core comes from the `common-expression-language` package; Kubernetes' extension
libraries are added for their common functions (strings: lowerAscii, upperAscii, trim,
replace, split, join, substring, indexOf, lastIndexOf, charAt; lists: isSorted, sum, min,
max, indexOf; regex: find, findAll). Quantity, URL, IP/CIDR and format libraries are not.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import cel

from podtask_devcluster.schema import (
    DUPLICATE,
    FORBIDDEN,
    INVALID,
    OMIT,
    REQUIRED,
    FieldError,
    Schema,
)

_OLD_SELF = re.compile(r"\boldSelf\b")


def _index_of(receiver: Any, item: Any, start: int = 0) -> int:
    if isinstance(receiver, str):
        return receiver.find(item, start)
    for index, value in enumerate(receiver):
        if value == item:
            return index
    return -1


def _last_index_of(receiver: Any, item: Any) -> int:
    if isinstance(receiver, str):
        return receiver.rfind(item)
    for index in range(len(receiver) - 1, -1, -1):
        if receiver[index] == item:
            return index
    return -1


def _substring(text: str, start: int, end: int | None = None) -> str:
    return text[start:end] if end is not None else text[start:]


def _replace(text: str, old: str, new: str, count: int = -1) -> str:
    return text.replace(old, new, count)


def _split(text: str, separator: str, limit: int = -1) -> list[str]:
    if limit == 0:
        return []
    return text.split(separator, limit - 1 if limit > 0 else -1)


def _join(items: list[str], separator: str = "") -> str:
    return separator.join(items)


def _find(text: str, pattern: str) -> str:
    match = re.search(pattern, text)
    return match.group(0) if match else ""


def _find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    found = [m.group(0) for m in re.finditer(pattern, text)]
    return found if limit < 0 else found[:limit]


def _extreme(chooser: Callable[..., Any]) -> Callable[..., Any]:
    def pick(*args: Any) -> Any:
        values = args[0] if len(args) == 1 and isinstance(args[0], list) else list(args)
        return chooser(values)

    return pick


EXTENSIONS: dict[str, Callable[..., Any]] = {
    "lowerAscii": lambda s: s.lower(),
    "upperAscii": lambda s: s.upper(),
    "trim": lambda s: s.strip(),
    "replace": _replace,
    "split": _split,
    "join": _join,
    "substring": _substring,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "charAt": lambda s, i: s[i] if i < len(s) else "",
    "find": _find,
    "findAll": _find_all,
    "isSorted": lambda items: list(items) == sorted(items),
    "sum": lambda items: sum(items),
    "min": _extreme(min),
    "max": _extreme(max),
}


def _context(self_value: Any, old_value: Any, has_old: bool) -> cel.Context:
    context = cel.Context()
    for name, function in EXTENSIONS.items():
        context.add_function(name, function)
    context.add_variable("self", self_value)
    if has_old:
        context.add_variable("oldSelf", old_value)
    return context


def _evaluate(expression: str, context: cel.Context) -> Any:
    return cel.evaluate(expression, context)


def _schema_type(schema: Schema) -> str:
    return str(schema.get("type", ""))


def _child(path: str | None, key: str) -> str:
    return f"{path}.{key}" if path else key


def _normalized_field_path(field_path: str) -> str:
    return field_path[1:] if field_path.startswith(".") else field_path


def _error(
    path: str | None, schema: Schema, value: Any, detail: str, reason: str | None
) -> FieldError:
    field = path if path is not None else "<nil>"
    if reason == "FieldValueForbidden":
        return FieldError(FORBIDDEN, field, None, detail)
    if reason == "FieldValueRequired":
        return FieldError(REQUIRED, field, None, detail)
    if reason == "FieldValueDuplicate":
        return FieldError(DUPLICATE, field, value, "")
    shown = OMIT if _schema_type(schema) in ("object", "array") else value
    return FieldError(INVALID, field, shown, detail)


def _rule_text(rule: dict[str, Any]) -> str:
    message = str(rule.get("message") or "").strip()
    return message or str(rule.get("rule", "")).strip()


def _check_node(
    value: Any, old: Any, has_old: bool, schema: Schema, path: str | None
) -> list[FieldError]:
    errors: list[FieldError] = []
    for rule in schema.get("x-kubernetes-validations") or []:
        expression = str(rule.get("rule", ""))
        optional_old = bool(rule.get("optionalOldSelf"))
        if _OLD_SELF.search(expression) and not has_old and not optional_old:
            continue
        context = _context(value, old, has_old)
        try:
            result = _evaluate(expression, context)
        except Exception as failure:
            detail = f"{_describe(failure)} evaluating rule: {_rule_text(rule)}"
            errors.append(FieldError(INVALID, path or "<nil>", _shown(schema, value), detail))
            continue
        if result is True:
            continue
        where = path
        if rule.get("fieldPath"):
            where = _child(path, _normalized_field_path(str(rule["fieldPath"])))
        detail = ""
        if rule.get("messageExpression"):
            try:
                produced = _evaluate(str(rule["messageExpression"]), context)
                if isinstance(produced, str) and produced.strip():
                    detail = produced.strip()
            except Exception:
                detail = ""
        if not detail:
            message = str(rule.get("message") or "").strip()
            detail = message or f"failed rule: {expression.strip()}"
        errors.append(_error(where, schema, value, detail, rule.get("reason")))
    return errors


def _shown(schema: Schema, value: Any) -> Any:
    return OMIT if _schema_type(schema) in ("object", "array") else value


def _describe(failure: Exception) -> str:
    if isinstance(failure, KeyError):
        return f"no such key: {failure.args[0]}"
    return str(failure)


def validate_rules(obj: Any, schema: Schema, old: Any = None) -> list[FieldError]:
    """Every failing rule of the schema over `obj`; `old` is the stored object on update."""
    return _walk(obj, old, old is not None, schema, None)


def _walk(
    value: Any, old: Any, has_old: bool, schema: Schema, path: str | None
) -> list[FieldError]:
    errors = _check_node(value, old, has_old, schema, path)
    if isinstance(value, dict):
        old_map = old if has_old and isinstance(old, dict) else None
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if path is None and key in ("apiVersion", "kind", "metadata") and key not in properties:
                continue
            child = properties.get(key)
            if child is not None:
                child_path = _child(path, key)
            elif isinstance(additional, dict):
                child = additional
                child_path = f"{path or ''}[{key}]"
            else:
                continue
            child_has_old = old_map is not None and key in old_map
            errors += _walk(
                item, old_map.get(key) if old_map else None, child_has_old, child, child_path
            )
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = schema["items"]
        for index, item in enumerate(value):
            # Transition rules reach into lists only where kube can correlate the elements.
            errors += _walk(item, None, False, items, f"{path or ''}[{index}]")
    return errors
