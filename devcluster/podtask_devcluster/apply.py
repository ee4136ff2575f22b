"""Server-side apply, the part the dev cluster does: the fields an applied configuration sets
(`fieldsV1`), merging it into the live object, removing what the same manager applied before
and no longer does, and conflicts with fields other appliers own. Lists are atomic (replaced
whole); conflicts are only with other appliers (writes by update and patch own no fields here).
Pure functions over decoded JSON."""

from __future__ import annotations

import copy
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


def field_set(config: Any, root: bool = True) -> FieldSet:
    """The fieldsV1 of an applied configuration."""
    fields: FieldSet = {}
    if not isinstance(config, dict):
        return fields
    for key, value in config.items():
        if root and key in ("apiVersion", "kind"):
            continue
        if root and key == "metadata" and isinstance(value, dict):
            meta = {k: v for k, v in value.items() if k not in _UNOWNED_METADATA}
            if meta:
                fields["f:metadata"] = field_set(meta, root=False)
            continue
        fields[f"f:{key}"] = field_set(value, root=False) if isinstance(value, dict) else {}
    return fields


def leaf_paths(fields: FieldSet, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for key, child in fields.items():
        path = (*prefix, key[2:])
        if child:
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


def _merge(live: Any, config: Any) -> Any:
    if isinstance(live, dict) and isinstance(config, dict):
        merged = copy.deepcopy(live)
        for key, value in config.items():
            merged[key] = _merge(live.get(key), value)
        return merged
    return copy.deepcopy(config)


def _remove(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    current: Any = obj
    for part in path[:-1]:
        if not isinstance(current, dict) or part not in current:
            return
        current = current[part]
    if isinstance(current, dict):
        current.pop(path[-1], None)


def merged_object(
    live: dict[str, Any],
    config: dict[str, Any],
    manager: str,
    managed: list[dict[str, Any]],
) -> dict[str, Any]:
    """The live object with the config applied: fields the manager applied before and no
    longer sets are removed unless another applier also owns them."""
    merged: dict[str, Any] = _merge(live, config)
    wanted = set(leaf_paths(field_set(config)))
    others: set[tuple[str, ...]] = set()
    before: set[tuple[str, ...]] = set()
    for entry in managed:
        paths = set(leaf_paths(entry.get("fieldsV1") or {}))
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            before |= paths
        else:
            others |= paths
    for path in sorted(before - wanted - others):
        _remove(merged, path)
    return merged


def managed_entry(manager: str, api_version: str, config: dict[str, Any], time: str) -> Any:
    return {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": field_set(config),
    }


def with_entry(managed: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    kept = [
        e
        for e in managed
        if not (e.get("manager") == entry["manager"] and e.get("operation") == "Apply")
    ]
    return [*kept, entry]
