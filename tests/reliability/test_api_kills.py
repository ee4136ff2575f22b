"""A batch is all or none whatever dies when: the API SIGKILLed at a random point of a batch
of 1,000, then the batch sent again with the same idempotency key.

The API is a real uvicorn process (`python -m podtask_api`), the operator a real kopf
process, the cluster the embedded one in this process: a create observer sees every pod as
it is created, and checks that its run's batch was committed by then.

`make test` lets the first few dozen runs of the batch execute, then pauses its queue;
`make soak` executes all 1,000.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from podtask._contract.batch_markers import BatchState, read_marker
from podtask._contract.wire import LABEL_RUN
from podtask.client import PodtaskClient
from tests.e2e.composed import ComposedStack
from tests.e2e.conftest import TASK_MODULES, wait_until
from tests.reliability.conftest import SOAK, seeded

ITEMS = 1000
BATCH = "/api/v1/tasks/batch"


@pytest.fixture(scope="module")
def batch_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposedStack]:
    stack = ComposedStack(
        tmp_path_factory.mktemp("batches"),
        [str(TASK_MODULES / "batches.py")],
        # A thousand runner processes load the machine: a short Lease would be lost on the way.
        {"PODTASK_LEASE_DURATION_SECONDS": "60", "PODTASK_LEASE_RENEW_SECONDS": "10"},
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


class PodsOfOpenBatches:
    """A create observer: the pods created while their run's batch was not committed."""

    def __init__(self, stack: ComposedStack) -> None:
        self._stack = stack
        self.seen: list[str] = []
        self.offending: list[str] = []

    def __call__(self, obj: dict[str, Any]) -> None:
        if obj.get("kind") != "Pod":
            return
        run = (obj["metadata"].get("labels") or {}).get(LABEL_RUN, "")
        self.seen.append(run)
        markers = [
            marker
            for found in self._stack.cluster.objects("configmaps", namespace="default")
            if (marker := read_marker(found)) is not None
        ]
        # A run of a batch is named `run-<stem>-<item>`.
        mine = [m for m in markers if run.startswith(f"run-{m.stem}-")]
        if not mine or mine[0].state is not BatchState.COMMITTED:
            self.offending.append(run)


def _task_runs(stack: ComposedStack, task: str) -> list[dict[str, Any]]:
    return [r for r in stack.runs() if r["spec"]["taskId"] == task]


def _visible(client: PodtaskClient, task: str) -> list[str]:
    return [run["id"] for run in client.iter_runs(task=task)]


def _kill_api_once(stack: ComposedStack, task: str, before: int, target: int) -> None:
    """SIGKILL the API once `target` runs of this batch exist (or the request ended)."""
    wait_until(lambda: len(_task_runs(stack, task)) - before >= target, timeout=120, interval=0.02)
    stack.kill_api()


def test_api_killed_mid_batch_leaves_none_or_all_and_the_retry_makes_all(
    batch_stack: ComposedStack,
) -> None:
    composed = batch_stack
    seed, rng = seeded(0)
    watcher = PodsOfOpenBatches(composed)
    composed.cluster.add_create_observer(watcher)
    key = f"kill-{uuid.uuid4().hex}"
    items = [{"task": "quick", "payload": {"i": i}} for i in range(ITEMS)]
    target = rng.randint(0, ITEMS)  # how far the batch got when the API died
    outcome: dict[str, Any] = {}

    def first_try() -> None:
        # Raw HTTP: nothing retries this one.
        try:
            with composed.http() as http:
                outcome["response"] = http.post(
                    BATCH, json={"items": items}, headers={"Idempotency-Key": key}
                )
        except httpx.HTTPError as exc:
            outcome["error"] = exc

    sender = threading.Thread(target=first_try)
    sender.start()
    wait_until(
        lambda: not sender.is_alive() or len(_task_runs(composed, "quick")) >= target,
        timeout=120,
        interval=0.02,
    )
    composed.kill_api()
    sender.join(60)
    answered = outcome.get("response")
    existing = len(_task_runs(composed, "quick"))
    composed.start_api()
    with PodtaskClient(composed.api_url, composed.api_key) as client:
        visible = _visible(client, "quick")
        assert len(visible) in (0, ITEMS), (
            f"killed after {existing} of {ITEMS} runs (target {target}, seed {seed})"
        )
        if answered is not None and answered.status_code == 201:
            assert len(visible) == ITEMS
        for run in _task_runs(composed, "quick"):
            if run["metadata"]["name"] not in visible:
                with composed.http() as http:
                    response = http.get(f"/api/v1/runs/{run['metadata']['name']}")
                assert response.status_code == 404, "a run of an open batch is readable"

        handles = client.batch_trigger(
            "quick", [{"i": i} for i in range(ITEMS)], idempotency_key=key
        )
        ids = [handle.id for handle in handles]
        assert len(set(ids)) == ITEMS
        if answered is not None and answered.status_code == 201:
            assert ids == [run["id"] for run in answered.json()["runs"]]
        assert sorted(_visible(client, "quick")) == sorted(ids)
        assert sorted(r["metadata"]["name"] for r in _task_runs(composed, "quick")) == sorted(ids)

    if SOAK:
        runs = composed.wait_all(ids, timeout=1200)
        assert {n: r["status"]["phase"] for n, r in runs.items()} == dict.fromkeys(ids, "Completed")
        with PodtaskClient(composed.api_url, composed.api_key) as client:
            outputs = [client.get_run(i)["output"] for i in ids]
        assert outputs == [{"i": i} for i in range(ITEMS)]
    else:
        # Enough of the batch executes to show its pods came after its commit; the rest waits.
        wait_until(lambda: len(watcher.seen) >= 40, timeout=300)
        with PodtaskClient(composed.api_url, composed.api_key) as client:
            client.pause_queue("wide")
    composed.cluster.remove_create_observer(watcher)
    assert watcher.offending == [], "a run of a batch not committed got a pod"
    assert set(watcher.seen) <= set(ids)
    if SOAK:
        assert sorted(watcher.seen) == sorted(ids)


def test_the_client_retries_a_batch_cut_off_by_the_api_dying(batch_stack: ComposedStack) -> None:
    composed = batch_stack
    seed, rng = seeded(1)
    with PodtaskClient(composed.api_url, composed.api_key) as client:
        client.pause_queue("parked")
        before = len(_task_runs(composed, "parked"))
        outcome: dict[str, Any] = {}

        def trigger() -> None:
            try:
                outcome["handles"] = client.batch_trigger(
                    "parked", [{"i": i} for i in range(ITEMS)]
                )
            except Exception as exc:
                outcome["error"] = exc

        sender = threading.Thread(target=trigger)
        sender.start()
        _kill_api_once(composed, "parked", before, rng.randint(1, ITEMS - 1))
        composed.start_api()
        sender.join(300)
        assert "error" not in outcome, (outcome.get("error"), f"seed {seed}")
        ids = [handle.id for handle in outcome["handles"]]
        assert len(set(ids)) == ITEMS
        assert len(_task_runs(composed, "parked")) == before + ITEMS
        assert set(ids) <= set(_visible(client, "parked"))
