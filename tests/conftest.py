"""Fixtures shared across components: registered here so that one instance serves the session.

Every test gets its tier marker here (`unit`, `component`, `e2e`; and `real`), see
`tests/tiers.py`; a `unit` test that starts a process or touches a socket fails.

The summary names the real kube-apiserver that the session's real-cluster tests ran against,
and, on a machine without podman, buildah, runc and debootstrap, in one line why the tests that
need images (those using `built_images`, or marked `images`) did not run: they are deselected;
likewise, without Debian's chromium, the dashboard's browser tests (those using `chromium`).
A failing test that used a composed stack reports the tail of its operator's and API's logs:
pytest's temporary folders, where the logs are, do not outlive a few later runs.

On pytest-xdist workers (`make test`), each worker writes the groups of tests that share a
fixture (`tests/worker_groups.py`) and the controller hands them out longest first
(`tests/worker_order.py`); the summary's counts come from the workers' reports. Each worker
draws free ports from a slice of the range of its own (`podtask_devcluster.ports`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from podtask_devcluster.podman import tools_missing_reason
from podtask_devcluster.ports import RANGE_VARIABLE, slice_of_range
from tests.built_images import built_images
from tests.dashboard.browser import chromium_missing_reason
from tests.e2e.composed import ComposedStack
from tests.embedded_kube import embedded_kube
from tests.real_control_plane import real_control_plane
from tests.tiers import guarded, mark
from tests.worker_groups import write_groups
from tests.worker_order import WorkerSchedule

__all__ = ["built_images", "embedded_kube", "real_control_plane"]


def _real_apiserver_version() -> str:
    from podtask_devcluster.control_plane_build import cache_dir

    binary = cache_dir() / "kube-apiserver"
    if not binary.exists():
        return "not built"
    done = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    return (done.stdout or done.stderr).strip()


_IMAGES_NOT_RUN = pytest.StashKey[tuple[int, str]]()
_BROWSER_NOT_RUN = pytest.StashKey[tuple[int, str]]()
_NOT_RUN = {"images": _IMAGES_NOT_RUN, "browser": _BROWSER_NOT_RUN}


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # not in an xdist worker: its controller sees all
        config.pluginmanager.register(WorkerSchedule(config), "podtask-worker-schedule")
        return
    # Each worker (and what it starts) takes its servers' ports from a slice of its own: a
    # port one worker drew and binds later is never drawn by another meanwhile.
    worker = config.workerinput
    index, count = int(worker["workerid"].removeprefix("gw")), int(worker["workercount"])
    os.environ[RANGE_VARIABLE] = slice_of_range(index, count)


# First, so that `-m unit` (pytest's own deselection, which runs after) sees the tiers.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark(items)
    # Deselected rather than skipped: a skip is one summary line per test (or per file).
    for key, reason, needs in (
        (_IMAGES_NOT_RUN, tools_missing_reason(), _needs_images),
        (_BROWSER_NOT_RUN, chromium_missing_reason(), _needs_a_browser),
    ):
        if reason is None:
            continue
        needing = [i for i in items if needs(i)]
        if needing:
            config.hook.pytest_deselected(items=needing)
            items[:] = [i for i in items if i not in needing]
            config.stash[key] = (len(needing), reason)
    write_groups(config, items)


def _needs_images(item: pytest.Item) -> bool:
    return "built_images" in item.fixturenames or bool(item.get_closest_marker("images"))


def _needs_a_browser(item: pytest.Item) -> bool:
    return "chromium" in getattr(item, "fixturenames", ())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with guarded(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with guarded(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    for stack in {id(v): v for v in funcargs.values() if isinstance(v, ComposedStack)}.values():
        for title, text in stack.log_tails().items():
            report.sections.append((title, text))


# Under pytest-xdist the workers collect and deselect, and the controller writes the summary:
# each worker sends what it did not run (all collect the same tests) in its `workeroutput`.
def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        for name, key in _NOT_RUN.items():
            if key in session.config.stash:
                output[f"not_run_{name}"] = session.config.stash[key]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    output = getattr(node, "workeroutput", {})
    for name, key in _NOT_RUN.items():
        if f"not_run_{name}" in output:
            count, reason = output[f"not_run_{name}"]
            node.config.stash[key] = (count, reason)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    for key, what in ((_IMAGES_NOT_RUN, "image tests"), (_BROWSER_NOT_RUN, "browser tests")):
        if key in config.stash:
            count, reason = config.stash[key]
            terminalreporter.write_line(f"{what}: {count} not run: {reason}")
    ran = [
        report
        for outcome in ("passed", "failed", "error")
        for report in terminalreporter.stats.get(outcome, [])
        if getattr(report, "when", "call") == "call"
    ]
    real = [r for r in ran if "real" in r.keywords]
    if real:
        terminalreporter.write_line(
            f"real control plane: {_real_apiserver_version()} (kube-apiserver), "
            f"{len(real)} tests ran against it"
        )
