"""Table output: ages, JSONPath printer columns, pod STATUS."""

from __future__ import annotations

import datetime as dt

import pytest

from podtask_devcluster.tables import (
    PrinterColumn,
    build_table,
    columns_for,
    evaluate_jsonpath,
    human_duration,
    pod_status_reason,
)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (182, "3m2s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60 * 5, "3h5m"),
        (10 * 3600, "10h"),
        (2 * 86400, "2d"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (30 * 86400, "30d"),
        (3 * 365 * 86400 + 20 * 86400, "3y20d"),
        (10 * 365 * 86400, "10y"),
    ],
)
def test_human_duration(seconds: int, expected: str) -> None:
    assert human_duration(seconds) == expected


DOC = {
    "metadata": {"name": "x", "labels": {"a/b": "c"}},
    "spec": {"items": [{"n": 1}, {"n": 2}], "flag": True},
}


def test_jsonpath_subset() -> None:
    assert evaluate_jsonpath(".metadata.name", DOC) == ["x"]
    assert evaluate_jsonpath(".spec.items[0].n", DOC) == [1]
    assert evaluate_jsonpath(".spec.items[-1].n", DOC) == [2]
    assert evaluate_jsonpath(".spec.items[*].n", DOC) == [1, 2]
    assert evaluate_jsonpath(".metadata.labels['a/b']", DOC) == ["c"]
    assert evaluate_jsonpath("{.spec.flag}", DOC) == [True]
    assert evaluate_jsonpath(".spec.missing.deeper", DOC) == []
    assert evaluate_jsonpath(".spec.items[7].n", DOC) == []


def test_custom_columns_typed_cells() -> None:
    now = dt.datetime(2024, 1, 1, 0, 10, tzinfo=dt.UTC)
    columns = columns_for(
        "example.dev",
        "widgets",
        [
            PrinterColumn("Count", "integer", ".spec.count"),
            PrinterColumn("Ratio", "number", ".spec.count"),
            PrinterColumn("On", "boolean", ".spec.on"),
            PrinterColumn("Names", "string", ".spec.items[*].n"),
            PrinterColumn("Missing", "string", ".status.nothing"),
            PrinterColumn("Started", "date", ".status.started"),
        ],
    )
    obj = {
        "metadata": {"name": "w"},
        "spec": {"count": 3, "on": False, "items": [{"n": "a"}, {"n": "b"}]},
        "status": {"started": "2024-01-01T00:07:00Z"},
    }
    table = build_table([obj], columns, now=now, include_object="None")
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Count",
        "Ratio",
        "On",
        "Names",
        "Missing",
        "Started",
    ]
    assert table["rows"] == [{"cells": ["w", 3, 3.0, False, "a,b", None, "3m"]}]


def test_no_printer_columns_means_name_and_age() -> None:
    now = dt.datetime(2024, 1, 1, 0, 0, 5, tzinfo=dt.UTC)
    columns = columns_for("example.dev", "things", [])
    obj = {"metadata": {"name": "t", "creationTimestamp": "2024-01-01T00:00:00Z"}}
    table = build_table([obj], columns, now=now, with_headers=False)
    assert table["columnDefinitions"] == []
    assert table["rows"][0]["cells"] == ["t", "5s"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def _pod(phase: str, state: dict[str, object], **status: object) -> dict[str, object]:
    return {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [{"name": "c", "ready": "running" in state, "state": state}],
            **status,
        },
    }


def test_pod_status_reason_like_kubectl() -> None:
    assert pod_status_reason(_pod("Pending", {"waiting": {"reason": "ContainerCreating"}})) == (
        "ContainerCreating"
    )
    assert pod_status_reason(_pod("Running", {"running": {}})) == "Running"
    assert (
        pod_status_reason(_pod("Succeeded", {"terminated": {"reason": "Completed", "exitCode": 0}}))
        == "Completed"
    )
    assert (
        pod_status_reason(_pod("Failed", {"terminated": {"reason": "OOMKilled", "exitCode": 137}}))
        == "OOMKilled"
    )
    assert pod_status_reason(_pod("Failed", {"terminated": {"exitCode": 2}})) == "ExitCode:2"
    assert pod_status_reason(_pod("Failed", {"terminated": {"exitCode": 143, "signal": 15}})) == (
        "Signal:15"
    )
    terminating = _pod("Running", {"running": {}})
    terminating["metadata"] = {"name": "p", "deletionTimestamp": "2024-01-01T00:00:00Z"}
    assert pod_status_reason(terminating) == "Terminating"
    pod_columns = columns_for("", "pods", None)
    row = build_table([_pod("Running", {"running": {}})], pod_columns)["rows"][0]["cells"]
    assert row[:4] == ["p", "1/1", "Running", 0]
