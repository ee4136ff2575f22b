"""Runs that wait give their queue slot back (issue 13): a parent waiting on children of its
own limited queue completes, a retried parent finds the child it triggered before, `wait.for_`
is not counted in maxDuration, and an operator restarted mid-wait loses nothing — on both
clusters."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.composed import ComposedStack
from tests.e2e.conftest import TASK_MODULES, wait_until


@pytest.fixture(scope="module")
def composed(
    tmp_path_factory: pytest.TempPathFactory, cluster_kind: str
) -> Iterator[ComposedStack]:
    stack = ComposedStack(
        tmp_path_factory.mktemp("waits"),
        [str(TASK_MODULES / "waiting.py")],
        # The real node is this machine: 20 children and their parents fit with small requests.
        operator_env={"PODTASK_CPU_REQUEST_RATIO": "0.1"} if cluster_kind == "real" else None,
        cluster_kind=cluster_kind,
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def _waiting(composed: ComposedStack, run_id: str) -> dict[str, Any]:
    """The run once the API shows it `Waiting`."""
    return wait_until(  # type: ignore[no-any-return]
        lambda: (r := composed.run(run_id))["status"] == "Waiting" and r, timeout=120
    )


def _children(composed: ComposedStack, parent: str, task: str) -> list[str]:
    return sorted(
        r["metadata"]["name"]
        for r in composed.runs()
        if r["spec"]["taskId"] == task and r["spec"].get("parentRunId") == parent
    )


def _pods_of(composed: ComposedStack, run_id: str) -> list[str]:
    return [c.name for c in composed.creations if c.run == run_id]


def test_a_parent_and_its_child_on_a_queue_of_one_complete(composed: ComposedStack) -> None:
    parent = composed.trigger("solo-parent", {"n": 21, "seconds": 3})
    waiting = _waiting(composed, parent)
    [child] = _children(composed, parent, "solo-child")
    assert waiting["wait"]["runs"] == [child]
    assert any(c["message"] == f"Waiting for {child}" for c in waiting["conditions"]), waiting
    listed = composed.kubectl("get", "taskrun", parent, "-o", "wide")
    assert "Waiting" in listed and child in listed, listed

    done = composed.wait_for(parent, timeout=180)
    assert done["status"] == "Completed", done
    assert done["output"] == {"child": {"doubled": 42, "parent": parent}, "childRunId": child}
    assert done["wait"] is None
    assert done["attempts"][0]["waitedSeconds"] > 0
    assert _pods_of(composed, parent) == [f"{parent}-1"]


def test_a_parent_waits_on_twenty_children_of_its_own_queue_of_two(
    composed: ComposedStack,
) -> None:
    parent = composed.trigger("pair-parent", {"count": 20})
    done = composed.wait_for(parent, timeout=600)
    assert done["status"] == "Completed", done
    assert done["output"] == {"children": list(range(20))}
    children = _children(composed, parent, "pair-child")
    assert len(children) == 20
    # Each child's pod was created with at most two pods of the queue holding a slot: the
    # waiting parent's runs on beside them.
    created = [c for c in composed.created_in("pair") if c.run in children]
    assert len(created) == 20
    assert max(c.active_in_bucket for c in created) <= 3
    assert composed.creation_gaps == 0


def test_a_retried_parent_gets_the_child_it_triggered_before(composed: ComposedStack) -> None:
    parent = composed.trigger("retried-parent", {"seconds": 3})
    done = composed.wait_for(parent, timeout=180)
    assert done["status"] == "Completed", done
    assert [a["reason"] for a in done["attempts"]] == ["Error", "Completed"]
    [child] = _children(composed, parent, "kept-child")
    assert done["output"] == {
        "child": {"made": "once", "by": parent},
        "childRunId": child,
        "attempt": 2,
    }
    assert composed.run(child)["status"] == "Completed"


def test_wait_for_gives_the_slot_back_and_is_not_counted_in_max_duration(
    composed: ComposedStack,
) -> None:
    pausing = composed.trigger("pausing", {"seconds": 6})
    waiting = _waiting(composed, pausing)
    assert waiting["wait"]["until"] is not None
    # The queue of one is free while it waits: another run of it starts and completes.
    other = composed.trigger("solo-child", {"n": 1})
    assert composed.wait_for(other, timeout=120)["status"] == "Completed"
    assert composed.run(pausing)["status"] in ("Waiting", "Executing")

    done = composed.wait_for(pausing, timeout=120)
    assert done["status"] == "Completed", done  # its maxDuration is 3 s
    assert done["output"]["waited"] >= 6
    assert done["attempts"][0]["waitedSeconds"] >= 5


def test_an_operator_restarted_mid_wait_loses_nothing(composed: ComposedStack) -> None:
    parent = composed.trigger("solo-parent", {"n": 5, "seconds": 6})
    _waiting(composed, parent)
    composed.kill_operator()
    composed.start_operator()

    done = composed.wait_for(parent, timeout=240)
    assert done["status"] == "Completed", done
    [child] = _children(composed, parent, "solo-child")
    assert done["output"]["childRunId"] == child
    assert _pods_of(composed, parent) == [f"{parent}-1"]
    assert _pods_of(composed, child) == [f"{child}-1"]
