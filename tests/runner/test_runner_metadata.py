"""A task's writes to its run's metadata, through a real runner process to the real API: the
document as the task left it is the run's, and `ctx.is_test` is the run's `isTest`."""

from __future__ import annotations

import pytest
from runner_fixtures import TASK_MODULES, LiveApi

# Not unit (tests/tiers.py): runs the runner as a process.
pytestmark = pytest.mark.component

MODULE = str(TASK_MODULES / "runner_metadata_tasks.py")


@pytest.mark.parametrize("is_test", [True, False])
def test_the_metadata_the_task_left_is_the_runs(live_api: LiveApi, is_test: bool) -> None:
    run = live_api.start_run(
        "runner-metadata", module=MODULE, metadata={"from": "trigger"}, isTest=is_test
    )
    done = live_api.run_runner(run)
    assert done.returncode == 0, done.stderr
    output = live_api.report(run)["output"]
    assert output["given"] == {"from": "trigger"} and output["isTest"] is is_test
    assert "over the limit" in output["refused"] and "256 KiB" in output["refused"]
    assert live_api.status(run)["metadata"] == {
        "progress": 1,
        "steps": ["start", "end"],
        "fromThread": True,
        "count": 3,
    }
    assert "could not send" not in done.stderr
