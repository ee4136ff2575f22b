"""PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a strategic merge patch
approximation. Pure functions over decoded JSON; they never mutate their inputs."""

from __future__ import annotations

import copy
from typing import Any

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class PatchError(ValueError):
    """A patch that is malformed or cannot be applied to the document."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Merge patch, except that lists of objects keyed by `name` (containers, env, volumes, ...)
    merge element-wise by name as Kubernetes' strategic merge does; other lists are replaced.
    `$`-directives are honoured only as far as `$patch: delete`/`replace`; the others
    (`$setElementOrder`, `$retainKeys`, ...) are dropped."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and _named_items(value) and _named_items(result.get(key)):
            result[key] = _merge_named_lists(result[key], value)
        elif isinstance(value, list):
            result[key] = [
                copy.deepcopy(item)
                for item in value
                if not (isinstance(item, dict) and item.get("$patch") == "delete")
            ]
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _named_items(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and "name" in item for item in value)
    )


def _merge_named_lists(target: list[Any], patch: list[Any]) -> list[Any]:
    merged = [copy.deepcopy(item) for item in target]
    index = {item["name"]: position for position, item in enumerate(merged)}
    deleted: set[str] = set()
    for item in patch:
        name = item["name"]
        if item.get("$patch") == "delete":
            deleted.add(name)
        elif name in index:
            merged[index[name]] = strategic_merge_patch(merged[index[name]], item)
        else:
            index[name] = len(merged)
            merged.append(strategic_merge_patch({}, item))
    return [item for item in merged if item["name"] not in deleted]


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _list_index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PatchError(f"array index {index} out of range")
    return index


def _parent(doc: Any, tokens: list[str]) -> Any:
    current = doc
    for token in tokens[:-1]:
        if isinstance(current, dict):
            if token not in current:
                raise PatchError(f"path element {token!r} does not exist")
            current = current[token]
        elif isinstance(current, list):
            current = current[_list_index(current, token, allow_end=False)]
        else:
            raise PatchError(f"cannot traverse into a scalar at {token!r}")
    return current


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path element {last!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_list_index(parent, last, allow_end=False)]
    raise PatchError("cannot index a scalar")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, last, allow_end=True), value)
    else:
        raise PatchError("cannot add to a scalar")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"path element {last!r} does not exist")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_list_index(parent, last, allow_end=False))
    raise PatchError("cannot remove from a scalar")


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902. Fails as a whole: the input is never half-patched."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"invalid JSON patch operation {operation!r}")
        op = operation["op"]
        tokens = _pointer(operation["path"])
        if op == "add":
            doc = _add(doc, tokens, copy.deepcopy(_required_value(operation)))
        elif op == "remove":
            doc, _ = _remove(doc, tokens)
        elif op == "replace":
            _get(doc, tokens)
            if not tokens:
                doc = copy.deepcopy(_required_value(operation))
            else:
                doc, _ = _remove(doc, tokens)
                doc = _add(doc, tokens, copy.deepcopy(_required_value(operation)))
        elif op == "move":
            source = _pointer(_required_from(operation))
            doc, value = _remove(doc, source)
            doc = _add(doc, tokens, value)
        elif op == "copy":
            value = copy.deepcopy(_get(doc, _pointer(_required_from(operation))))
            doc = _add(doc, tokens, value)
        elif op == "test":
            if _get(doc, tokens) != _required_value(operation):
                raise PatchError(f"test operation failed at {operation['path']!r}")
        else:
            raise PatchError(f"unknown JSON patch operation {op!r}")
    return doc


def _required_value(operation: dict[str, Any]) -> Any:
    if "value" not in operation:
        raise PatchError(f"operation {operation['op']!r} needs a value")
    return operation["value"]


def _required_from(operation: dict[str, Any]) -> str:
    source = operation.get("from")
    if not isinstance(source, str):
        raise PatchError(f"operation {operation['op']!r} needs a 'from' pointer")
    return source
