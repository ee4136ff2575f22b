"""How pytest-xdist's controller hands the suite to its workers (`--dist loadgroup`): in units
of one group of tests each (`tests/worker_groups.py`), the longest unit first, by the
durations of the last runs, kept in `~/.cache/podtask/test-durations.json`
(`$PODTASK_TEST_DURATIONS` when set).

The groups: each worker writes the groups of the tests it collected into a folder that the
controller named in its `workerinput`, before it reports its collection; the scheduler reads
them when every worker has collected (all collect the same tests). xdist's own `loadgroup`
reads `xdist_group` markers through node ids that pytest 9.2 no longer lets it change, so it
is not used.

The order: out of the box the biggest units by test count go first, which is not the longest
first: a test that waits minutes for a cron tick is a unit of one, and, taken last, it would
run alone at the end while the other workers sit idle. Here the units go longest first (LPT
scheduling), a unit's cost the sum of its tests' setup, call and teardown in the runs that
timed them; a test never timed counts as `UNKNOWN_SECONDS`. Every run, with or without
workers, records the durations of the tests it ran, so the order is right from the second
`make test` on the machine on.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from podtask_devcluster.build_cache import exclusive
from tests.worker_groups import GROUPS_FILE

# Outside the clone, as the control plane's build is: CI runs in a fresh clone of the
# repository on the same machine, where `.pytest_cache` would always be empty.
DURATIONS_ENV = "PODTASK_TEST_DURATIONS"
# A test with no recorded duration: about the median of the component tests.
UNKNOWN_SECONDS = 1.0


def durations_file() -> Path:
    configured = os.environ.get(DURATIONS_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "podtask" / "test-durations.json"


def _read(path: Path) -> dict[str, float]:
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(stored, dict):
        return {}
    return {str(k): float(v) for k, v in stored.items() if isinstance(v, int | float)}


class Durations:
    """Seconds per test (setup, call and teardown), as recorded by earlier runs (of any clone
    on this machine) and this one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._known: dict[str, float] | None = None
        self._this_run: dict[str, float] = {}

    @property
    def known(self) -> dict[str, float]:
        if self._known is None:
            self._known = _read(self.path)
        return self._known

    def of(self, nodeid: str) -> float:
        return self.known.get(nodeid, UNKNOWN_SECONDS)

    def record(self, report: pytest.TestReport) -> None:
        self._this_run[report.nodeid] = self._this_run.get(report.nodeid, 0.0) + report.duration

    def save(self) -> None:
        """Keep this run's durations; the tests it did not run keep theirs. Several runs on the
        machine (other clones) may end at once: each merges into the file under a lock."""
        if not self._this_run:
            return
        with exclusive(self.path.with_suffix(".lock")):
            merged = {**_read(self.path), **{k: round(v, 3) for k, v in self._this_run.items()}}
            partial = self.path.with_suffix(".partial")
            partial.write_text(json.dumps(merged, sort_keys=True))
            partial.replace(self.path)


def longest_first(
    units: dict[str, dict[str, bool]], seconds: Callable[[str], float]
) -> list[tuple[str, dict[str, bool]]]:
    """The units (name -> its node ids), longest first; equal ones keep their order."""
    return sorted(units.items(), key=lambda unit: -sum(seconds(nodeid) for nodeid in unit[1]))


def grouped_scheduler(
    config: pytest.Config, log: Any, groups_dir: Path, durations: Durations
) -> Any:
    """xdist's scope scheduling, its scopes the groups the workers wrote, longest first."""
    from xdist.scheduler import LoadScopeScheduling

    class Grouped(LoadScopeScheduling):  # type: ignore[misc]
        _groups: dict[str, str] | None = None
        _sorted = False

        def _split_scope(self, nodeid: str) -> str:
            if self._groups is None:
                # Called first when every worker has collected, and so written its groups.
                written = sorted(groups_dir.glob("*.json"))
                self._groups = json.loads(written[0].read_text()) if written else {}
            group = self._groups.get(nodeid)
            # A group's name cannot be a node id ("g<n>-" and no "::"): no clash.
            return group if group is not None else nodeid

        def _assign_work_unit(self, node: Any) -> None:
            # The queue is complete when the first unit is handed out (`schedule`).
            if not self._sorted:
                self._sorted = True
                self.workqueue = OrderedDict(longest_first(self.workqueue, durations.of))
            super()._assign_work_unit(node)

    return Grouped(config, log)


class WorkerSchedule:
    """Registered by tests/conftest.py in the process that sees every report: the only one
    without workers, xdist's controller with them (not in its workers)."""

    def __init__(self, config: pytest.Config) -> None:
        self.durations = Durations(durations_file())
        self._groups_dir: Path | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.durations.record(report)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        if self._groups_dir is None:
            self._groups_dir = Path(tempfile.mkdtemp(prefix="podtask-worker-groups-"))
        node.workerinput[GROUPS_FILE] = str(self._groups_dir)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        if config.getvalue("dist") != "loadgroup" or self._groups_dir is None:
            return None
        return grouped_scheduler(config, log, self._groups_dir, self.durations)

    def pytest_sessionfinish(self) -> None:
        self.durations.save()
        if self._groups_dir is not None:
            shutil.rmtree(self._groups_dir, ignore_errors=True)
