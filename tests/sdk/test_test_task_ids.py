"""The task ids of every task module the tests load are unique across them all.

Declared tasks are kept per process, and one pytest process loads many of these modules (in
composed stacks, in the API's and the runner's tests): an id declared in two of them fails
the second import, whichever test happens to load it later.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _declared_ids(path: Path) -> list[str]:
    """The string ids of the `task(id=...)` calls in one module, read without importing it."""
    ids = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name != "task":
            continue
        for keyword in node.keywords:
            if keyword.arg == "id" and isinstance(keyword.value, ast.Constant):
                ids.append(str(keyword.value.value))
    return ids


def test_no_two_test_task_modules_declare_the_same_task_id() -> None:
    modules = sorted(ROOT.glob("tests/**/task_modules/**/*.py")) + sorted(
        ROOT.glob("examples/**/*.py")
    )
    assert len(modules) > 10
    where: dict[str, list[str]] = defaultdict(list)
    for module in modules:
        for task_id in _declared_ids(module):
            where[task_id].append(str(module.relative_to(ROOT)))
    twice = {task_id: places for task_id, places in where.items() if len(places) > 1}
    assert not twice, f"task ids declared in more than one module: {twice}"
