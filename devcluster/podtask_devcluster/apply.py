"""Server-side apply, the part the dev cluster does: the fields an applied configuration sets
(`fieldsV1`), merging it into the live object, removing what the same manager applied before
and no longer does, and conflicts with fields other appliers own. Lists are replaced whole;
`x-kubernetes-list-type: set` and `map` lists are owned per element (`v:`/`k:` entries), atomic
lists as one field. Conflicts are only with other appliers (writes by update and patch own no
fields here). Pure functions over decoded JSON."""

from __future__ import annotations

import copy
import json
from typing import Any

FieldSet = dict[str, Any]
# Set by the server, never owned by an applier.
_UNOWNED_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)


def _child_schema(schema: Any, key: str) -> Any:
    if not isinstance(schema, dict):
        return None
    properties = schema.get("properties") or {}
    if key in properties:
        return properties[key]
    additional = schema.get("additionalProperties")
    return additional if isinstance(additional, dict) else None


def _list_fields(items: list[Any], schema: Any) -> FieldSet:
    list_type = schema.get("x-kubernetes-list-type") if isinstance(schema, dict) else None
    element = schema.get("items") if isinstance(schema, dict) else None
    fields: FieldSet = {}
    if list_type == "set":
        for item in items:
            fields["v:" + json.dumps(item, separators=(",", ":"))] = {}
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        for item in items:
            if isinstance(item, dict):
                key = {k: item.get(k) for k in keys}
                entry = {".": {}, **field_set(item, element, root=False)}
                fields["k:" + json.dumps(key, separators=(",", ":"), sort_keys=True)] = entry
    return fields


def field_set(config: Any, schema: Any = None, root: bool = True) -> FieldSet:
    """The fieldsV1 of an applied configuration (`schema`: the kind's schema, if it has one)."""
    fields: FieldSet = {}
    if not isinstance(config, dict):
        return fields
    for key, value in config.items():
        if root and key in ("apiVersion", "kind"):
            continue
        if root and key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in _UNOWNED_METADATA}
            if meta:
                fields["f:metadata"] = field_set(meta, None, root=False)
            continue
        child = _child_schema(schema, key)
        if isinstance(value, dict):
            fields[f"f:{key}"] = field_set(value, child, root=False)
        elif isinstance(value, list):
            fields[f"f:{key}"] = _list_fields(value, child)
        else:
            fields[f"f:{key}"] = {}
    return fields


def leaf_paths(fields: FieldSet, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Dotted paths of owned fields; a list counts as one field (its elements are not
    addressed separately here)."""
    paths: list[tuple[str, ...]] = []
    for key, child in fields.items():
        if not key.startswith("f:"):
            continue
        path = (*prefix, key[2:])
        if child and all(k.startswith("f:") for k in child):
            paths += leaf_paths(child, path)
        else:
            paths.append(path)
    return paths


def _lookup(obj: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    current = obj
    for part in path:
        if not isinstance(current, dict) or part not in current:
            return False, None
        current = current[part]
    return True, current


def conflicts(
    live: dict[str, Any],
    config: dict[str, Any],
    manager: str,
    managed: list[dict[str, Any]],
) -> list[tuple[str, str]]:
    """(other manager, dotted path) for each field the config changes that another applier
    owns."""
    found: list[tuple[str, str]] = []
    for path in leaf_paths(field_set(config)):
        _, wanted = _lookup(config, path)
        present, current = _lookup(live, path)
        if present and current == wanted:
            continue
        for entry in managed:
            if entry.get("manager") == manager or entry.get("operation") != "Apply":
                continue
            if path in leaf_paths(entry.get("fieldsV1") or {}):
                found.append((str(entry.get("manager")), "." + ".".join(path)))
    return found


def _drop(fields: FieldSet, path: tuple[str, ...]) -> FieldSet:
    result = copy.deepcopy(fields)
    parents: list[tuple[FieldSet, str]] = []
    current = result
    for part in path[:-1]:
        key = f"f:{part}"
        if key not in current:
            return result
        parents.append((current, key))
        current = current[key]
    current.pop(f"f:{path[-1]}", None)
    for parent, key in reversed(parents):
        if not parent[key]:
            del parent[key]
    return result


def taken_over(
    managed: list[dict[str, Any]], manager: str, found: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """A forced apply takes the conflicting fields from the managers that owned them."""
    updated = []
    for entry in managed:
        fields = entry.get("fieldsV1") or {}
        if entry.get("manager") != manager:
            for who, dotted in found:
                if who == entry.get("manager"):
                    fields = _drop(fields, tuple(dotted.lstrip(".").split(".")))
        if fields:
            updated.append({**entry, "fieldsV1": fields})
    return updated


def _merge(live: Any, config: Any) -> Any:
    if isinstance(live, dict) and isinstance(config, dict):
        merged = copy.deepcopy(live)
        for key, value in config.items():
            merged[key] = _merge(live.get(key), value)
        return merged
    return copy.deepcopy(config)


def _remove(obj: dict[str, Any], path: tuple[str, ...], kept: set[tuple[str, ...]]) -> None:
    """Remove the field, then the maps it leaves empty that nobody owns as a field."""
    parents: list[tuple[dict[str, Any], str]] = []
    current: Any = obj
    for part in path[:-1]:
        if not isinstance(current, dict) or part not in current:
            return
        parents.append((current, part))
        current = current[part]
    if not isinstance(current, dict):
        return
    current.pop(path[-1], None)
    for depth in range(len(parents) - 1, 0, -1):
        parent, key = parents[depth]
        if parent.get(key) == {} and path[: depth + 1] not in kept:
            del parent[key]


def merged_object(
    live: dict[str, Any],
    config: dict[str, Any],
    manager: str,
    managed: list[dict[str, Any]],
    schema: Any = None,
) -> dict[str, Any]:
    """The live object with the config applied: fields the manager applied before and no
    longer sets are removed unless another applier also owns them."""
    merged: dict[str, Any] = _merge(live, config)
    wanted = set(leaf_paths(field_set(config, schema)))
    others: set[tuple[str, ...]] = set()
    before: set[tuple[str, ...]] = set()
    for entry in managed:
        paths = set(leaf_paths(entry.get("fieldsV1") or {}))
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            before |= paths
        else:
            others |= paths
    for path in sorted(before - wanted - others):
        _remove(merged, path, wanted | others)
    return merged


def managed_entry(
    manager: str, api_version: str, config: dict[str, Any], time: str, schema: Any = None
) -> Any:
    return {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": field_set(config, schema),
    }


def with_entry(managed: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The manager's Apply entry replaced where it was, or added at the end."""
    replaced = [
        entry if e.get("manager") == entry["manager"] and e.get("operation") == "Apply" else e
        for e in managed
    ]
    return replaced if entry in replaced else [*managed, entry]
