"""The commands that need an extra of the distribution (`pip install 'podtask[…]'`), and the
message when it is missing.

`pip install podtask` is the SDK, the client and the commands through the API; `podtask keys`
reads the keys' Secret through a kubeconfig (`cluster`), and `podtask dev` runs the control
plane and a cluster on this machine (`dev`). The modules listed are the import names of each
extra's requirements in pyproject.toml (a test keeps the two alike).
"""

from __future__ import annotations

import importlib.util

EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "cluster": ("kubernetes",),
    "control-plane": (
        "kubernetes",
        "pydantic_settings",
        "kopf",
        "aiohttp",
        "fastapi",
        "uvicorn",
        "starlette",
        "sortedcontainers",
        "jinja2",
        "fastapi_offline",
        "prometheus_client",
    ),
}
EXTRA_MODULES["dev"] = (*EXTRA_MODULES["control-plane"], "yaml", "psutil", "cel", "cryptography")

COMMAND_EXTRAS = {"keys": "cluster", "dev": "dev"}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_extra(command: str) -> str | None:
    """What to install for `podtask <command>`, when a module it needs is not installed."""
    extra = COMMAND_EXTRAS.get(command)
    if extra is None:
        return None
    missing = [module for module in EXTRA_MODULES[extra] if not _installed(module)]
    if not missing:
        return None
    return (
        f"`podtask {command}` needs `pip install 'podtask[{extra}]'` "
        f"({', '.join(missing)} not installed)"
    )
