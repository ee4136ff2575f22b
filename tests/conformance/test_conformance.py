"""The differential conformance suite: the same requests against the embedded cluster and the
real control plane (kube-apiserver v1.37), comparing status codes, stored objects, error bodies
and warnings. The embedded cluster is also held, on its own, to the status codes kube-apiserver
gives (so the suite says something where the real control plane cannot be built)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import asdict

import pytest

from tests.conformance.conftest import Transcripts
from tests.conformance.scenarios import SCENARIOS

EXPECTED_STATUSES: dict[str, list[int]] = {
    "create_and_conflict": [201, 409, 200, 409, 200, 404, 422, 409, 200],
    "invalid_custom_resources": [422] * 12 + [201, 201] + [422] * 6 + [201, 201] + [422] * 5,
    "invalid_taskrun": [422],
    "unknown_fields": [201, 200, 400, 201, 400, 422, 422],
    "defaults_and_numbers": [201, 200, 422, 422, 201, 200],
    "status_subresource": [201, 200, 200, 200, 422, 200, 422, 200],
    "watch_from_old_version": [],
    "pagination": [400],
    "selectors": [400],
    "cascading_deletes": [200, 200, 200, 200],
    "oversize_object": [201, 500, 413],
    "server_side_apply": [201, 422, 409, 200, 200, 201, 422],
    "pods_binding_and_graceful_deletion": [
        *(201, 201, 201, 400, 200, 404),
        *(201, 409, 200, 200, 200, 200, 200, 404),
        *(200, 200, 404),
    ],
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_embedded_answers_like_kube_apiserver(
    embedded_transcripts: Transcripts, scenario: str
) -> None:
    transcript = embedded_transcripts[scenario]
    assert [status for _, status in transcript.statuses()] == EXPECTED_STATUSES[scenario]


def test_embedded_prunes_and_warns_about_unknown_fields(
    embedded_transcripts: Transcripts,
) -> None:
    steps = {step.label: step for step in embedded_transcripts["unknown_fields"].steps}
    assert steps["default (Warn)"].warnings == [
        'unknown field "metadata.colour"',
        'unknown field "spec.extra"',
        'unknown field "spec.nested"',
        'unknown field "top"',
    ]
    assert "extra" not in steps["stored pruned"].body["spec"]
    assert "top" not in steps["stored pruned"].body
    assert steps["Ignore"].warnings == []
    assert 'duplicate field "spec.size"' in steps["duplicate field, Strict"].body["message"]


def test_embedded_names_the_fields_of_an_invalid_taskrun(
    embedded_transcripts: Transcripts,
) -> None:
    (step,) = embedded_transcripts["invalid_taskrun"].steps
    fields = {cause["field"] for cause in step.body["details"]["causes"]}
    assert {"spec.taskId", "spec.machine", "spec.queue"} <= fields
    assert step.warnings == ['unknown field "spec.bogus"', 'unknown field "spec.task"']


def test_embedded_watch_from_before_a_resource_existed_is_gone(
    embedded_transcripts: Transcripts,
) -> None:
    steps = {step.label: step for step in embedded_transcripts["watch_from_old_version"].steps}
    since = steps["events since a resourceVersion"].body
    assert [kind for kind, _ in since] == ["ADDED", "DELETED"]
    ((kind, status),) = steps["events since resourceVersion 1"].body
    assert (kind, status["code"], status["reason"]) == ("ERROR", 410, "Expired")


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_answers_as_the_real_kube_apiserver(
    embedded_transcripts: Transcripts, real_transcripts: Transcripts, scenario: str
) -> None:
    embedded = [asdict(step) for step in embedded_transcripts[scenario].steps]
    real = [asdict(step) for step in real_transcripts[scenario].steps]
    for ours, theirs in zip(embedded, real, strict=True):
        assert ours == theirs, f"{scenario} / {theirs['label']}"


def _explain(kubeconfig: str, resource: str) -> str:
    result = subprocess.run(
        ["kubectl", "explain", resource],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": kubeconfig},
        timeout=60,
        check=True,
    )
    return result.stdout


def test_kubectl_explain_on_the_embedded_cluster(embedded_transcripts: Transcripts) -> None:
    kubeconfig = embedded_transcripts.kubeconfig
    text = _explain(kubeconfig, "taskruns.spec")
    assert "KIND:       TaskRun" in text
    assert "taskId" in text and "machine" in text
    assert "ENUM:\n    red\n    green\n    blue" in _explain(kubeconfig, "gadgets.spec.color")


@pytest.mark.parametrize("resource", ["taskruns.spec", "gadgets.spec", "gadgets.spec.color"])
def test_kubectl_explain_same_as_real(
    embedded_transcripts: Transcripts, real_transcripts: Transcripts, resource: str
) -> None:
    assert _explain(embedded_transcripts.kubeconfig, resource) == _explain(
        real_transcripts.kubeconfig, resource
    )
