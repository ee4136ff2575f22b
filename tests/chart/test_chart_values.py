"""Bad values fail at render time (so at `helm install`/`helm template`), naming the value:
values.schema.json for each value alone, the chart's `fail` for values that contradict each
other."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from tests.chart.chart import CHART, render

SCHEMA_ERRORS: list[tuple[dict[str, Any], list[str]]] = [
    ({"machines": {"cpuRequestRatio": -0.5}}, ["/machines/cpuRequestRatio", "-0.5"]),
    ({"machines": {"cpuRequestRatio": 0}}, ["/machines/cpuRequestRatio", "exclusiveMinimum"]),
    ({"machines": {"memoryRequestRatio": 1.5}}, ["/machines/memoryRequestRatio", "maximum"]),
    ({"machines": {"memoryRequestRatio": "half"}}, ["/machines/memoryRequestRatio"]),
    # Presets are fixed in podtask._contract.machines; the operator cannot take overrides of them.
    ({"machines": {"presets": {"small-1x": {"cpu": 2}}}}, ["/machines", "'presets'"]),
    ({"machines": {"small-1x": {"cpu": 2}}}, ["/machines", "'small-1x'"]),
    ({"presets": {"large-2x": {"memory": "32Gi"}}}, ["'presets' not allowed"]),
    ({"image": {"repository": ""}}, ["/image/repository", "minLength"]),
    ({"image": {"repository": None}}, ["/image", "missing property 'repository'"]),
    ({"image": {"pullPolicy": "Sometimes"}}, ["/image/pullPolicy"]),
    ({"runner": {"image": None}}, ["/runner", "missing property 'image'"]),
    ({"runner": {"runAsUser": 0}}, ["/runner/runAsUser"]),
    ({"operator": {"replicas": 0}}, ["/operator/replicas", "minimum"]),
    ({"operator": {"replicas": 1.5}}, ["/operator/replicas"]),
    ({"api": {"replicas": 0}}, ["/api/replicas"]),
    ({"operator": {"replica": 2}}, ["/operator", "'replica'"]),  # a typo
    ({"queues": {"defaultConcurrencyLimit": 0}}, ["/queues/defaultConcurrencyLimit"]),
    ({"retention": {"podSeconds": -1}}, ["/retention/podSeconds"]),
    ({"retention": {"housekeepingIntervalSeconds": 0}}, ["/retention/housekeepingIntervalSeconds"]),
    ({"operator": {"healthPort": 70000}}, ["/operator/healthPort"]),
    ({"api": {"internalUrl": "podtask-api:80"}}, ["/api/internalUrl"]),
    ({"apiKeys": {"bootstrapSha256": "not-a-digest"}}, ["/apiKeys/bootstrapSha256"]),
    ({"taskNamespace": "Tasks_NS"}, ["/taskNamespace"]),
    ({"podDisruptionBudget": {"maxUnavailable": 0}}, ["/podDisruptionBudget/maxUnavailable"]),
    ({"runner": {"tokenTtlSeconds": 10}}, ["/runner/tokenTtlSeconds"]),
    ({"schedules": {"missedTicks": "all"}}, ["/schedules/missedTicks"]),
]

RENDER_ERRORS: list[tuple[dict[str, Any], list[str]]] = [
    (
        {"operator": {"replicas": 2, "leaderElection": {"enabled": False}}},
        ["operator.replicas", "operator.leaderElection.enabled"],
    ),
    (
        {"operator": {"leaderElection": {"renewSeconds": 10, "durationSeconds": 15}}},
        ["operator.leaderElection.renewSeconds", "operator.leaderElection.durationSeconds"],
    ),
    ({"apiKeys": {"existingSecret": "keys", "bootstrap": "pt_x"}}, ["apiKeys.existingSecret"]),
    ({"apiKeys": {"bootstrap": "pt_x", "bootstrapSha256": "a" * 64}}, ["apiKeys.bootstrap"]),
]


def _ids(cases: list[tuple[dict[str, Any], list[str]]]) -> list[str]:
    return [expected[0].strip("/'") for _, expected in cases]


@pytest.mark.parametrize(("values", "expected"), SCHEMA_ERRORS, ids=_ids(SCHEMA_ERRORS))
def test_the_schema_refuses_a_bad_value_by_name(
    values: dict[str, Any], expected: list[str]
) -> None:
    with pytest.raises(helm.HelmValuesError) as refused:
        render(values)
    for text in expected:
        assert text in str(refused.value), str(refused.value)


@pytest.mark.parametrize(("values", "expected"), RENDER_ERRORS, ids=_ids(RENDER_ERRORS))
def test_contradicting_values_fail_the_render_by_name(
    values: dict[str, Any], expected: list[str]
) -> None:
    with pytest.raises(helm.HelmRenderError) as refused:
        render(values)
    for text in expected:
        assert text in str(refused.value), str(refused.value)


def test_lint_reports_a_bad_value_as_an_error() -> None:
    report = helm.lint(CHART, {"machines": {"cpuRequestRatio": 2}})
    assert any("/machines/cpuRequestRatio" in message for message in report["errors"]), report


def test_edge_values_are_accepted() -> None:
    render(
        {
            "machines": {"cpuRequestRatio": 1, "memoryRequestRatio": 0.01},
            "retention": {"podSeconds": 0, "runSeconds": 0},
            "operator": {"replicas": 2, "leaderElection": {"renewSeconds": 7.5}},
            "podDisruptionBudget": {"enabled": True, "maxUnavailable": "50%"},
            "api": {"internalUrl": "https://tasks.internal.example.com/"},
        }
    )
