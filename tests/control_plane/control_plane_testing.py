"""kubectl and plain HTTP against the real control plane, as a user or a component would."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from podtask_devcluster.control_plane import ControlPlane
from tests.e2e.conftest import wait_until

KUBECTL = "/usr/bin/kubectl" if Path("/usr/bin/kubectl").exists() else "kubectl"


def kubectl(
    kubeconfig: Path, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    result = subprocess.run(
        [KUBECTL, *args], input=input, capture_output=True, text=True, env=env, timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
        )
    return result


def kubectl_json(kubeconfig: Path, *args: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(kubectl(kubeconfig, *args, "-o", "json").stdout)
    return found


def new_namespace(control_plane: ControlPlane, name: str) -> str:
    """A namespace whose `default` ServiceAccount exists (pods are refused until it does)."""
    kubectl(control_plane.kubeconfig, "create", "namespace", name)
    wait_until(
        lambda: (
            kubectl(
                control_plane.kubeconfig,
                "get",
                "serviceaccount",
                "default",
                "-n",
                name,
                check=False,
            ).returncode
            == 0
        ),
        timeout=60,
    )
    return name
