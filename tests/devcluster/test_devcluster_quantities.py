"""Kubernetes quantities."""

from __future__ import annotations

from decimal import Decimal

import pytest

from podtask_devcluster.quantities import canonical_quantity, parse_bytes, parse_quantity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("128Mi", 128 * 2**20),
        ("512Mi", 512 * 2**20),
        ("0.5Gi", 2**29),
        ("1Gi", 2**30),
        ("64Ki", 65536),
        ("1K", 1000),
        ("1k", 1000),
        ("2M", 2_000_000),
        ("1G", 10**9),
        ("1e9", 10**9),
        ("1E3", 1000),
        ("12345", 12345),
        (1048576, 1048576),
        ("1.5", 2),
    ],
)
def test_parse_bytes(text: str | int, expected: int) -> None:
    assert parse_bytes(text) == expected


def test_milli_units() -> None:
    assert parse_quantity("250m") == Decimal("0.25")


@pytest.mark.parametrize("bad", ["", "abc", "1Mb", "Mi", "1.2.3", "--1"])
def test_rejects_non_quantities(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(bad)


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("4000m", "4"),
        ("8192Mi", "8Gi"),
        ("375m", "375m"),
        ("1536Mi", "1536Mi"),
        ("0.5Gi", "512Mi"),
        ("0.5Ki", "512"),
        ("1000", "1k"),
        ("1500", "1500"),
        ("0.5", "500m"),
        ("1e3", "1e3"),
        ("1.5e3", "1500"),
        ("0.1m", "100u"),
        ("0.0000000001", "1n"),
        ("0", "0"),
        ("16Gi", "16Gi"),
    ],
)
def test_quantities_are_canonical_as_kube_apiserver_stores_them(text: str, stored: str) -> None:
    assert canonical_quantity(text) == stored


@pytest.mark.parametrize("text", ["lots", "1K", "1.5.5", "", "Mi"])
def test_what_kube_refuses_is_not_a_quantity(text: str) -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        canonical_quantity(text)
