"""podtask's CRDs on the real control plane: applied from `crds/` as `kubectl apply` would, and
waited for until the apiserver serves them (Established), as a user's install does."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

from podtask_devcluster.control_plane import ControlPlane
from tests.e2e.conftest import wait_until

CRDS = Path(__file__).resolve().parents[1] / "crds"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def crd_manifests() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted(CRDS.glob("*.yaml"))]


def _established(client: httpx.Client, name: str) -> bool:
    found = client.get(f"{CRD_PATH}/{name}")
    conditions = (found.json().get("status") or {}).get("conditions") or []
    return found.status_code == 200 and any(
        c["type"] == "Established" and c["status"] == "True" for c in conditions
    )


def install_crds(control_plane: ControlPlane) -> None:
    """Apply the CRDs (server-side apply, so a second install is a no-op) and wait for them."""
    client = control_plane.client()
    for crd in crd_manifests():
        name = crd["metadata"]["name"]
        applied = client.patch(
            f"{CRD_PATH}/{name}",
            params={"fieldManager": "podtask-tests", "force": "true"},
            headers={"Content-Type": "application/apply-patch+yaml"},
            content=yaml.safe_dump(crd),
        )
        assert applied.status_code in (200, 201), applied.text
        wait_until(lambda name=name: _established(client, name), timeout=60)


def new_namespace(control_plane: ControlPlane, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    created = control_plane.client().post(
        "/api/v1/namespaces",
        json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
    )
    assert created.status_code == 201, created.text
    return name
