"""How podtask calls podman and buildah on this machine: the tools it needs, and the settings
every call runs with (`containers.conf` beside this module, named by CONTAINERS_CONF).

Building images (`image_build`) and running containers (the node agent's container runtime)
both run them with `tool_env`, so they share one image store and one
configuration.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
# What building and running images needs, each from Debian's package of the same name.
IMAGE_TOOLS = ("podman", "buildah", "runc", "debootstrap")


def missing_tools(tools: tuple[str, ...] = IMAGE_TOOLS) -> list[str]:
    """The tools of `tools` that are not on PATH."""
    return [tool for tool in tools if shutil.which(tool) is None]


def tools_missing_reason(tools: tuple[str, ...] = IMAGE_TOOLS) -> str | None:
    """One line saying why images cannot be built or run here, or None when they can."""
    missing = missing_tools(tools)
    if not missing:
        return None
    return (
        f"{', '.join(missing)} not installed (apt-get install {' '.join(tools)}): "
        "images are neither built nor run"
    )


def tool_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a podman or buildah call: `base` (this process's by default) with
    podtask's containers.conf."""
    env = dict(os.environ if base is None else base)
    env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    return env
