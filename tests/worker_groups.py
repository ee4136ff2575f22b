"""Which tests share a pytest-xdist worker, when the suite runs on several (`make test`:
`pytest -n WORKERS --dist loadgroup`): each test's group, which the workers write for the
controller's scheduler (`tests/worker_order.py`).

A fixture wider than a function (a stack, a cluster, a control plane) is set up once per
worker that runs a test using it, and torn down as soon as that worker runs a test outside
its scope. So the tests that share an instance of a class-, module- or package-scoped fixture
go to one worker, one after another, in one group: their fixture starts once, as it does
without workers. A test linked to two such instances joins both groups into one.

- An instance is the fixture and its scope's node (the test's class or module, or the package
  of the fixture's conftest) with the values of the parameters it depends on: the stack of
  `tests/e2e` on the embedded cluster and the one on the real control plane are two
  instances, which two workers run side by side.
- A package-scoped fixture that has params (`cluster_kind`) links nothing by itself: it
  names a parameter of the package, which the fixtures that depend on it carry.
- Session fixtures start once per worker (the embedded cluster: each worker has its own),
  except the ones in `ONCE_PER_RUN`, which cost minutes or keep costing CPU (the images, the
  session's real control plane): every test that uses one of those is in one group.
- A test that uses no shared fixture (every `unit` test, and the tests that start what they
  need in their own body) has no group: any free worker takes it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

# Session fixtures that must run once in the whole run, whatever the number of workers.
ONCE_PER_RUN = frozenset(
    {
        "built_images",  # builds three images with buildah: minutes
        # etcd and three Kubernetes components: a start costs tens of CPU-seconds, and each
        # idles on the CPU for as long as its worker lives.
        "real_control_plane",
    }
)
SHARED_SCOPES = ("class", "module", "package")
# The key of `workerinput` that names the folder where workers write their groups.
GROUPS_FILE = "podtask_groups_dir"


def _definitions(item: pytest.Item) -> dict[str, Any]:
    """The fixture definitions an item uses, by name: the one in force for it (the last)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return {}
    return {name: defs[-1] for name, defs in info.name2fixturedefs.items() if defs}


def _closure(name: str, definitions: dict[str, Any]) -> set[str]:
    """`name` and every fixture it depends on, directly or not."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in definitions:
            continue
        seen.add(current)
        todo.extend(definitions[current].argnames)
    return seen


def _scope_node(item: pytest.Item, definition: Any) -> str:
    """The node whose instance of `definition` the item gets."""
    if definition.scope == "package":
        # pytest caches a package fixture on the package of the file that defines it.
        return str(Path(inspect.getfile(definition.func)).parent)
    module = str(item.path)
    if definition.scope == "class" and getattr(item, "cls", None) is not None:
        return f"{module}::{item.cls.__qualname__}"  # type: ignore[attr-defined]
    return module


def instances(item: pytest.Item) -> list[str]:
    """The shared fixture instances the item uses, each as a name unique in the run."""
    definitions = _definitions(item)
    params: dict[str, object] = dict(getattr(getattr(item, "callspec", None), "params", {}))
    found = []
    for name in item.fixturenames:
        definition = definitions.get(name)
        if definition is None:
            continue
        if name in ONCE_PER_RUN:
            found.append(name)
            continue
        if definition.scope not in SHARED_SCOPES:
            continue
        if definition.scope == "package" and definition.params is not None:
            continue  # names a parameter of the package (`cluster_kind`)
        values = ",".join(
            f"{arg}={params[arg]}" for arg in sorted(_closure(name, definitions)) if arg in params
        )
        found.append(f"{name}@{_scope_node(item, definition)}[{values}]")
    return found


def _find(parent: dict[str, str], key: str) -> str:
    while parent[key] != key:
        parent[key] = parent[parent[key]]
        key = parent[key]
    return key


def groups(items: Iterable[pytest.Item]) -> dict[str, str]:
    """Node id -> group name, for the items that share an instance with some test."""
    parent: dict[str, str] = {}
    used: dict[str, list[str]] = {}
    for item in items:
        found = instances(item)
        if not found:
            continue
        used[item.nodeid] = found
        for key in found:
            parent.setdefault(key, key)
        for key in found[1:]:
            parent[_find(parent, key)] = _find(parent, found[0])
    # A readable name: the group's first instance in collection order, shortened.
    names: dict[str, str] = {}
    result = {}
    for nodeid, found in used.items():
        root = _find(parent, found[0])
        result[nodeid] = names.setdefault(root, _short(found[0], len(names)))
    return result


def _short(instance: str, index: int) -> str:
    fixture, _, rest = instance.partition("@")
    where, _, values = rest.partition("[")
    relative = where.split("/tests/", 1)[-1] if "/tests/" in where else where
    label = f"{fixture}:{relative}" if relative else fixture
    values = values.rstrip("]").replace("cluster_kind=", "")
    text = f"{label}-{values}" if values else label
    return f"g{index}-{text}"


def write_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker: write the groups where the controller's scheduler reads them
    (`tests/worker_order.py`), before the worker reports its collection."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or GROUPS_FILE not in workerinput:
        return
    target = Path(workerinput[GROUPS_FILE]) / f"{workerinput['workerid']}.json"
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps(groups(items)))
    partial.replace(target)
