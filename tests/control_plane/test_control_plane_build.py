"""The binaries' cache: what counts as built, and the one line said when Go is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from podtask_devcluster.control_plane_build import (
    CACHE_ENV,
    COMPONENTS,
    STAMP_NAME,
    GoToolchainMissing,
    ensure_binaries,
    expected_stamp,
)

# Not unit (tests/tiers.py): builds the control plane, or runs `go`.
pytestmark = pytest.mark.component

NO_GO_PATH = "/nonexistent"


@pytest.fixture(scope="module")
def built() -> Path:
    return ensure_binaries()


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    # Without go, anything that would need a build says so instead.
    monkeypatch.setenv("PATH", NO_GO_PATH)
    return tmp_path / "cache" / expected_stamp()["kubernetes"]


def test_the_cache_is_stamped_with_the_pinned_versions(built: Path) -> None:
    stamp = json.loads((built / STAMP_NAME).read_text())
    assert stamp == expected_stamp()
    assert stamp["kubernetes"] == "v1.37.2"
    assert built.name == "v1.37.2"


def test_missing_go_is_said_in_one_line(empty_cache: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "podtask_devcluster.control_plane", "build"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 1
    assert finished.stderr.startswith("error: `go` is not on PATH"), finished.stderr
    assert len(finished.stderr.strip().splitlines()) == 1, finished.stderr
    assert not empty_cache.exists()


def test_a_complete_unstamped_cache_is_adopted(built: Path, empty_cache: Path) -> None:
    """Binaries built by hand with the documented `go build` are kept, once each reports the
    pinned version."""
    empty_cache.mkdir(parents=True)
    for name in COMPONENTS:
        (empty_cache / name).symlink_to(built / name)
    assert ensure_binaries() == empty_cache
    assert json.loads((empty_cache / STAMP_NAME).read_text()) == expected_stamp()


def test_an_incomplete_cache_is_not_used(built: Path, empty_cache: Path) -> None:
    empty_cache.mkdir(parents=True)
    for name in COMPONENTS[:-1]:
        (empty_cache / name).symlink_to(built / name)
    with pytest.raises(GoToolchainMissing):
        ensure_binaries()


def test_a_binary_of_another_version_is_not_used(built: Path, empty_cache: Path) -> None:
    empty_cache.mkdir(parents=True)
    for name in COMPONENTS:
        (empty_cache / name).symlink_to(built / name)
    (empty_cache / "etcd").unlink()
    (empty_cache / "etcd").write_text("#!/bin/sh\necho 'etcd Version: 3.5.0'\n")
    (empty_cache / "etcd").chmod(0o755)
    with pytest.raises(GoToolchainMissing):
        ensure_binaries()
    assert not (empty_cache / STAMP_NAME).exists()
