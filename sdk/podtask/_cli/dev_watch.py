"""`podtask dev`'s watch of its task modules: a saved change is read and registered at once.

What is watched: the files of the modules `podtask dev` was given, every source file of the
author's they import (a helper module too), and the folders they come from (a folder given, the
folder of each given module: a task file added there counts). Polling, not a file-system
notification library: `podtask dev` calls `ModuleWatch.poll` from its loop (every 0.2 s), which
compares each file's modification time, size and inode with what it saw last; a change is acted
on once the files stayed the same for a moment (an editor that writes in several steps is read
once, whole). No dependency, and a few dozen `stat` calls a poll.

On a change the modules are read again in a child process (`declarations`): a good reading is
registered, and what changed is said in words (`dev_changes`); a module that no longer imports
is reported with the author's traceback, and the last good registration stays (new runs still
import the module as saved, so they fail to import until it is fixed). A registration the
cluster refuses (a part restarting) is tried again.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from podtask._authoring.manifest import Manifest
from podtask._cli.declarations import Declarations, ImportFailure, Reading
from podtask._cli.dev_changes import declaration_changes

RETRY_SECONDS = 2.0
SETTLE_SECONDS = 0.05

# (modification time in ns, size, inode): an editor that saves by renaming a new file over the
# old one changes the inode even when the time and size look the same.
FileState = tuple[int, int, int]
# Each watched file (and each `.py` file in a watched folder) → its state, None when missing.
Snapshot = dict[str, FileState | None]


@dataclass(frozen=True)
class WatchedPaths:
    files: frozenset[str]
    folders: frozenset[str]

    def __or__(self, other: WatchedPaths) -> WatchedPaths:
        return WatchedPaths(self.files | other.files, self.folders | other.folders)


def watched_paths(module_refs: Iterable[str], readings: Iterable[Reading]) -> WatchedPaths:
    """The files and folders to watch for `module_refs`, given what readings of them loaded."""
    files: set[str] = set()
    folders: set[str] = set()
    for ref in module_refs:
        path = Path(ref)
        if path.is_dir():
            folders.add(str(path.resolve()))
        elif path.suffix == ".py":
            files.add(str(path.resolve()))
    for reading in readings:
        files.update(reading.modules, reading.sources)
        folders.update(str(Path(module).parent) for module in reading.modules)
    return WatchedPaths(frozenset(files), frozenset(folders))


def _state(path: str) -> FileState | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_mtime_ns, found.st_size, found.st_ino)


def snapshot(paths: WatchedPaths) -> Snapshot:
    """The state of every watched file, and of every `.py` file in the watched folders (hidden
    ones aside)."""
    names = set(paths.files)
    for folder in paths.folders:
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            # Not an editor's hidden files (emacs's `.#tasks.py` lock, a draft being written).
            names.update(
                entry.path
                for entry in entries
                if entry.name.endswith(".py") and not entry.name.startswith(".")
            )
    return {name: _state(name) for name in sorted(names)}


def changed_files(before: Snapshot, after: Snapshot) -> list[str]:
    """The files added, removed or modified between two snapshots, sorted."""
    return sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )


def shown_path(path: str, cwd: str) -> str:
    """`path` relative to `cwd` when it is inside it, as the developer would type it."""
    return os.path.relpath(path, cwd) if Path(path).is_relative_to(cwd) else path


def reload_notice(changed: Sequence[str], lines: Sequence[str]) -> str:
    """What `podtask dev` says after registering a saved change."""
    if not lines:
        return (
            f"{', '.join(changed)} changed: no task or queue changed "
            "(new runs import the module as saved)"
        )
    return f"{', '.join(changed)} changed; registered:\n" + "\n".join(f"  {line}" for line in lines)


def failure_notice(changed: Sequence[str], failure: ImportFailure) -> str:
    return (
        f"{', '.join(changed)} changed, but {failure.summary}\n"
        "  the tasks stay registered as they were; fix the module and save it again"
        + (f"\n{failure.traceback.rstrip()}" if failure.traceback else "")
    )


class ModuleWatch:
    """Watches `module_refs` (registered as `registered`), reads them again with `read` when
    they change and registers each good reading through `register`; `poll` returns what
    happened, in words."""

    def __init__(
        self,
        module_refs: Sequence[str],
        registered: Declarations,
        register: Callable[[Manifest], None],
        read: Callable[[], Reading],
        cwd: str | None = None,
    ) -> None:
        self._refs = list(module_refs)
        self._register = register
        self._read = read
        self._cwd = cwd or os.getcwd()
        self.registered = registered
        self._paths = watched_paths(self._refs, [registered])
        self._seen = snapshot(self._paths)
        # A good reading the cluster did not take yet, tried again at `_retry_at`.
        self._pending: Declarations | None = None
        self._pending_changed: list[str] = []
        self._retry_at = 0.0

    @property
    def paths(self) -> WatchedPaths:
        return self._paths

    def poll(self, now: float) -> list[str]:
        notices = []
        if self._pending is not None and now >= self._retry_at:
            notices += self._apply(self._pending, self._pending_changed, now)
        current = snapshot(self._paths)
        if current == self._seen:
            return notices
        # Read once the files stay the same a moment: an editor may write in several steps.
        time.sleep(SETTLE_SECONDS)
        if snapshot(self._paths) != current:
            return notices  # still changing: the next poll looks again
        changed = [shown_path(name, self._cwd) for name in changed_files(self._seen, current)]
        reading = self._read()
        # What the reading loaded is watched from now on (a file once watched stays so); a
        # change made while it read is still seen: the files already watched keep their state
        # from before the reading.
        self._paths |= watched_paths(self._refs, [reading])
        self._seen = {**snapshot(self._paths), **current}
        if isinstance(reading, ImportFailure):
            return [*notices, failure_notice(changed, reading)]
        return notices + self._apply(reading, changed, now)

    def _apply(self, reading: Declarations, changed: list[str], now: float) -> list[str]:
        try:
            self._register(reading.manifest)
        except Exception as error:
            # Said once; the retries are quiet until one succeeds.
            retried = self._pending is reading
            self._pending, self._pending_changed = reading, changed
            self._retry_at = now + RETRY_SECONDS
            if retried:
                return []
            return [
                f"{', '.join(changed)} changed, but registering it failed "
                f"({type(error).__name__}: {error}); trying again every {RETRY_SECONDS:g} s"
            ]
        lines = declaration_changes(self.registered.manifest, reading.manifest)
        self.registered, self._pending = reading, None
        return [reload_notice(changed, lines)]
