"""What `podtask dev --runtime containers` checks before it starts: the source it mounts into
containers that run as another user must be open to that user."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from podtask._cli.dev import unreadable_by_others


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A folder open to others (pytest's own are private to their owner)."""
    folder = Path(tempfile.mkdtemp(prefix="podtask-open-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def test_an_open_source_folder_passes(tmp_path: Path) -> None:
    source = tmp_path / "project"
    source.mkdir()
    for folder in (tmp_path, source):
        folder.chmod(0o755)
    assert unreadable_by_others(source) is None


def test_the_first_closed_folder_on_the_way_is_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = home / "project"
    source.mkdir(parents=True)
    tmp_path.chmod(0o755)
    home.chmod(0o700)  # a private home folder: others cannot enter it
    source.chmod(0o755)
    assert unreadable_by_others(source) == home


def test_the_source_itself_must_be_listable(tmp_path: Path) -> None:
    source = tmp_path / "project"
    source.mkdir()
    tmp_path.chmod(0o755)
    source.chmod(0o711)  # enterable, not listable
    assert unreadable_by_others(source) == source
