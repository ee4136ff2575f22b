"""Loading task modules: by file path, by folder, or by dotted module name."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from podtask._authoring.tasks import Task, registered_tasks
from podtask.errors import TaskModuleImportError


def module_files(ref: str) -> list[str]:
    """Expand a folder into its task files; a file or a dotted name stays as it is."""
    path = Path(ref)
    if path.is_dir():
        return [str(p.resolve()) for p in sorted(path.glob("*.py")) if not p.name.startswith("_")]
    if path.suffix == ".py":
        return [str(path.resolve())]
    return [ref]


def import_task_module(ref: str) -> ModuleType:
    """Import one task module: a `.py` path (its folder goes on sys.path) or a dotted name."""
    path = Path(ref)
    if path.suffix == ".py":
        if not path.is_file():
            raise TaskModuleImportError(f"task module {ref!r}: no such file")
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        name = path.stem
    else:
        name = ref
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise TaskModuleImportError(
            f"task module {ref!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc


def load_tasks(refs: Iterable[str]) -> dict[str, tuple[str, Task]]:
    """Import every module that `refs` names; task id → (module ref, task)."""
    found: dict[str, tuple[str, Task]] = {}
    for ref in refs:
        for module_ref in module_files(ref):
            before = set(registered_tasks())
            module = import_task_module(module_ref)
            for task_id, declared in registered_tasks().items():
                if task_id not in before or declared.module == module.__name__:
                    found.setdefault(task_id, (module_ref, declared))
    return found
