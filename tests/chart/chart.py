"""The podtask chart rendered with Helm's own engine, offline or against the embedded cluster.

`helm-python-sdk` binds Helm v4's Go SDK (its C ABI) through ctypes, so these renders are
exactly what `helm template` / `helm install` would produce, with no helm binary: values are
merged and checked against values.schema.json, templates rendered, `fail` honoured.
Offline, `lookup` finds nothing; `render_in_cluster` renders against a kubeconfig, where it
finds what the cluster holds (as an upgrade does).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "podtask"
# The release and namespace the install guide uses: objects are then called podtask-api, ….
RELEASE = "podtask"
NAMESPACE = "podtask"
NOTES = "templates/NOTES.txt"


@dataclass(frozen=True)
class Rendered:
    """One render: every template's text, and the Kubernetes objects in them."""

    manifests: dict[str, str]

    @property
    def notes(self) -> str:
        return self.manifests[f"podtask/{NOTES}"]

    @property
    def objects(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for path, text in sorted(self.manifests.items()):
            if path.endswith(NOTES):
                continue
            found.extend(doc for doc in yaml.safe_load_all(text) if doc)
        return found

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str, name: str) -> dict[str, Any]:
        matches = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
        return matches[0]

    def secret_value(self, name: str, key: str) -> str:
        """What a pod gets from `secretKeyRef` to this rendered Secret."""
        data = self.one("Secret", name)["data"]
        return base64.b64decode(data[key]).decode()

    def write(self, path: Path) -> Path:
        """All objects as one multi-document YAML file (for `kubectl apply -f`)."""
        path.write_text(yaml.safe_dump_all(self.objects, sort_keys=False))
        return path


def render(
    values: dict[str, Any] | None = None,
    *,
    namespace: str = NAMESPACE,
    release: str = RELEASE,
) -> Rendered:
    """`helm template` of the chart: raises `helm.HelmValuesError` for values the schema
    refuses and `helm.HelmRenderError` for a template's `fail`."""
    with helm.Chart.load(CHART) as chart:
        return Rendered(chart.render(values, name=release, namespace=namespace, is_install=True))


def render_in_cluster(
    kubeconfig: Path,
    values: dict[str, Any] | None = None,
    *,
    namespace: str = NAMESPACE,
    release: str = RELEASE,
    upgrade: bool = False,
) -> Rendered:
    """A render whose `lookup` reads the cluster behind `kubeconfig` (nothing is written)."""
    with (
        helm.Chart.load(CHART) as chart,
        helm.Config(kubeconfig_path=kubeconfig, namespace=namespace) as config,
    ):
        manifests = config.render(
            chart,
            values,
            name=release,
            namespace=namespace,
            is_install=not upgrade,
            is_upgrade=upgrade,
        )
    return Rendered(manifests)


def chart_crds() -> dict[str, str]:
    """The CRD files Helm installs from the chart's crds/ folder, by file name."""
    with helm.Chart.load(CHART) as chart:
        return {Path(crd["filename"]).name: crd["data"] for crd in chart.crds}
