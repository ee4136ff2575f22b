"""The chart installs the CRDs in crds/ (which tests/sdk/test_crds.py keeps equal to the
models): `make crds` copies them into charts/podtask/crds/, and this fails when it was not run."""

from __future__ import annotations

from tests.chart.chart import CHART, ROOT, chart_crds


def test_the_chart_crds_are_the_generated_ones() -> None:
    generated = {path.name: path.read_text() for path in (ROOT / "crds").glob("*.yaml")}
    on_disk = {path.name: path.read_text() for path in (CHART / "crds").glob("*.yaml")}
    assert set(on_disk) == set(generated), "run `make crds`"
    for name, text in generated.items():
        assert on_disk[name] == text, f"charts/podtask/crds/{name} drifted: run `make crds`"


def test_helm_loads_exactly_those_crds() -> None:
    generated = {path.name: path.read_text() for path in (ROOT / "crds").glob("*.yaml")}
    assert chart_crds() == generated
