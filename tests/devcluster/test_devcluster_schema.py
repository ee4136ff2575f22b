"""The structural-schema rules of the dev cluster, pure: Go's number formatting in messages,
numbers as kube stores them, pruning paths, defaulting and the first string error."""

from __future__ import annotations

from typing import Any

import pytest

from podtask_devcluster.schema import (
    apply_defaults,
    go_float,
    prune,
    prune_nulls,
    stored_numbers,
)
from podtask_devcluster.schema_validation import validate


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (0.5, "0.5"),
        (100000.0, "100000"),
        (1e21, "1e+21"),
        (1e6, "1e+06"),
        (1.5e-5, "1.5e-05"),
        (0.0001, "0.0001"),
        (-2.25, "-2.25"),
        (1234567.0, "1.234567e+06"),
    ],
)
def test_floats_print_as_go_prints_them(number: float, text: str) -> None:
    assert go_float(number) == text


def test_numbers_are_stored_as_int64_or_float64() -> None:
    stored = stored_numbers({"a": 1.0, "b": 2**64 + 1, "c": 0.1, "d": [3.0e20, 1e21]})
    assert stored == {
        "a": 1,
        "b": 18446744073709552000,
        "c": 0.1,
        "d": [300000000000000000000, 1e21],
    }
    assert isinstance(stored["d"][1], float)


SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 3, "pattern": "^[a-z]+$"},
                "mode": {"type": "string", "default": "auto"},
                "items": {"type": "array", "items": {"type": "object", "properties": {}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "note": {"type": "string"},
            },
        }
    },
}


def test_pruning_reports_the_paths_it_drops() -> None:
    obj = {"metadata": {}, "spec": {"x": 1, "items": [{"y": 2}], "free": {"z": 3}}, "top": 1}
    assert prune(obj, SCHEMA) == ["spec.items[0].y", "spec.x", "top"]
    assert obj == {"metadata": {}, "spec": {"items": [{}], "free": {"z": 3}}}


def test_nulls_and_defaults() -> None:
    obj: dict[str, Any] = {"spec": {"note": None, "mode": None}}
    prune_nulls(obj, SCHEMA)
    apply_defaults(obj, SCHEMA)
    assert obj == {"spec": {"mode": "auto"}}


def test_only_the_first_string_bound_is_reported() -> None:
    (error,) = validate({"spec": {"name": "ABCD"}}, SCHEMA)
    assert error.message() == "spec.name: Too long: may not be more than 3 bytes"
    (error,) = validate({"spec": {"name": "AB"}}, SCHEMA)
    assert error.message() == (
        "spec.name: Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'"
    )


def test_unchanged_values_are_not_judged_again_on_update() -> None:
    old = {"spec": {"name": "ABCD"}}
    assert validate({"spec": {"name": "ABCD", "mode": "x"}}, SCHEMA, old) == []
    assert validate({"spec": {"name": "ABCDE"}}, SCHEMA, old) != []
