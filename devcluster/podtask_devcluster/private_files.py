"""Owner-only files: the state directory holds payloads, outputs, tokens and Secrets (the
database), pod logs and the kubeconfig, so nobody else on the machine may read it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_directory(path: Path) -> Path:
    """Create `path` (and its parents) if needed; `path` itself is made owner-only."""
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    path.chmod(DIRECTORY_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty if it does not exist; either way it is made owner-only."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    path.chmod(FILE_MODE)
    return path


def restrict_if_present(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.chmod(FILE_MODE)


def write_private_text(path: Path, text: str) -> None:
    """Replace the file's content, never readable by others, not even for a moment."""
    private_file(path).write_text(text)


def open_private_for_writing(path: Path) -> BinaryIO:
    """`path` opened to be written from the start, owner-only whether it existed or not."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return os.fdopen(fd, "wb")
