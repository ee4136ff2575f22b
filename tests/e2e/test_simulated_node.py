"""`podtask dev --runtime simulated`, on both clusters: a run's pod starts no process, "runs"
for PODTASK_NODE_SIMULATED_SECONDS, fetches its attempt and reports success through the API
with the attempt's token as the runner does, so the run ends Completed with exit code 0 (its
task, which would fail if it ran, never ran)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from podtask._cli.devprocess import DevProcess
from tests.clusters import CLUSTERS
from tests.e2e.conftest import Stack, start_timeout, wait_until

SECONDS = 1.5
MODULE = """
from podtask import task


@task(id="never-runs", retry={"max_attempts": 1})
def never_runs(payload, ctx):
    raise RuntimeError("a simulated node runs no task")
"""


@pytest.fixture(scope="module", params=CLUSTERS)
def simulated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    project = tmp_path_factory.mktemp("project")
    (project / "never_runs.py").write_text(MODULE)
    dev = DevProcess(
        [str(project / "never_runs.py")],
        project / ".podtask",
        cwd=project,
        cluster=str(request.param),
        runtime="simulated",
        env={"PODTASK_NODE_SIMULATED_SECONDS": str(SECONDS)},
        start_timeout=start_timeout(str(request.param)),
    ).start()
    try:
        yield Stack(dev)
    finally:
        dev.stop()


def _runners(dev: DevProcess) -> list[int]:
    found = []
    for child in psutil.Process(dev.pid).children(recursive=True):
        try:
            if "podtask_runner" in " ".join(child.cmdline()):
                found.append(child.pid)
        except psutil.Error:
            continue
    return found


def test_a_run_on_the_simulated_node_completes_without_a_process(simulated: Stack) -> None:
    run_id = simulated.trigger("never-runs", {"i": 1})
    runners: list[int] = []

    def ended() -> dict[str, object] | None:
        runners.extend(_runners(simulated.dev))
        run = simulated.run(run_id)
        return run if run["status"] in ("Completed", "Failed", "Crashed", "SystemFailure") else None

    run = wait_until(ended, timeout=120)
    assert run["status"] == "Completed", run
    assert run["output"] is None and run["error"] is None
    (attempt,) = run["attempts"]
    # Its report completed the run, before the pod ended: no exit code on the attempt.
    assert attempt["exitCode"] is None and attempt["reason"] == "Completed"
    assert runners == [], "a runner process was started"

    def ended_pod() -> dict[str, Any] | None:
        pod = simulated.pod(attempt["pod"])
        return pod if pod["status"].get("phase") == "Succeeded" else None

    pod = wait_until(ended_pod, timeout=60)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["containerID"].startswith("simulated://")
    assert terminated["exitCode"] == 0
