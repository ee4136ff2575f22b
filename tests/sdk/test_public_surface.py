"""The author's surface of `podtask` is the documented one: every other module is private."""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import podtask

# docs/architecture.md, "The `podtask` package": what a task author imports.
PUBLIC_MODULES = {
    "podtask",
    "podtask.client",
    "podtask.errors",
    "podtask.hooks",
    "podtask.metadata",
}
ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def public_modules() -> set[str]:
    """Every module of the installed package whose dotted name has no `_`-led part."""
    found = {"podtask"}
    for module in pkgutil.walk_packages(podtask.__path__, prefix="podtask."):
        if not any(part.startswith("_") for part in module.name.split(".")):
            found.add(module.name)
    return found


def test_the_public_modules_are_the_documented_ones() -> None:
    assert public_modules() == PUBLIC_MODULES


def test_the_architecture_page_lists_the_public_modules() -> None:
    section = ARCHITECTURE.read_text().split("## The `podtask` package", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(podtask(?:\.\w+)?)` \|", section, re.MULTILINE))
    public = {name for name in listed if not name.split(".")[-1].startswith("_")}
    assert public == PUBLIC_MODULES
