"""The operator killed mid-flight loses nothing and never doubles an attempt, on both
clusters."""

from collections import Counter
from collections.abc import Iterator

import pytest

from tests.e2e.composed import ComposedStack
from tests.e2e.conftest import TASK_MODULES, wait_until


@pytest.fixture(scope="module")
def composed(
    tmp_path_factory: pytest.TempPathFactory, cluster_kind: str
) -> Iterator[ComposedStack]:
    stack = ComposedStack(
        tmp_path_factory.mktemp("restart"),
        [str(TASK_MODULES / "queued.py")],
        # The real node is this machine (2 CPUs here): 10 small-1x pods at once need requests
        # below the default 0.375 CPU.
        operator_env={"PODTASK_CPU_REQUEST_RATIO": "0.1"} if cluster_kind == "real" else None,
        cluster_kind=cluster_kind,
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def test_sigkill_with_fifty_runs_in_flight(composed: ComposedStack) -> None:
    ids = composed.batch("flow", [{"i": i, "seconds": 1} for i in range(50)])
    wait_until(lambda: len(composed.created_in("flow")) >= 12, timeout=60)
    composed.kill_operator()
    # While it is down, runs keep finishing and nobody admits: then it comes back.
    composed.start_operator()

    runs = composed.wait_all(ids, timeout=300)
    assert {r["status"]["phase"] for r in runs.values()} == {"Completed"}
    creations = composed.created_in("flow")
    pods = Counter(c.name for c in creations)
    assert max(pods.values()) == 1, "an attempt had two pods"
    for name, run in runs.items():
        attempts = run["status"]["attempts"]
        assert [a["pod"] for a in attempts] == [f"{name}-{n}" for n in range(1, len(attempts) + 1)]
        assert sum(1 for c in creations if c.run == name) == len(attempts)
    assert max(c.active_in_bucket for c in creations) <= 10
