"""Faults under the real `podtask dev`: its parts (operator, API, cluster with its kubelet, a
runner) SIGKILLed at random points, and the whole `podtask dev` SIGKILLed and started again on
the same state dir, while runs are triggered and executed. Whatever lands when, each run ends
exactly once and completes, none is lost or created twice, no body whose success was recorded
runs again, and no attempt has two pods.

A fault that kills an executing attempt without its report (a runner, the cluster, all of it)
costs that attempt, which runs again: at-least-once for an attempt that never reported. Its
body may even have returned just before (the ledger says `returned`, the API never heard), so
only a body whose attempt was recorded Completed must never run again.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import seeded, soak_or_short
from tests.reliability.faults import (
    DEV_PARTS,
    DevUnderFaults,
    Load,
    PhaseWatch,
    PodWatch,
    inject_dev_faults,
    restart_dev_repeatedly,
)
from tests.reliability.ledger import Ledger

TASK = "ledger-enduring"
MIXED_ROUNDS = soak_or_short(3, 1)
MIXED_RUNS = soak_or_short(100, 30)
MIXED_FAULTS = soak_or_short(20, 6)
RESTART_ROUNDS = soak_or_short(2, 1)
RESTART_RUNS = soak_or_short(60, 20)
RESTARTS = soak_or_short(5, 2)


def _check_round(
    stack: DevUnderFaults,
    ledger: Ledger,
    ids: list[str],
    watches: tuple[PhaseWatch, PodWatch],
    context: str,
) -> None:
    phases, pods = watches
    assert len(set(ids)) == len(ids), f"two triggers answered with one run {context}"
    runs = stack.wait_all(ids, timeout=600)
    outcomes = Counter(r["status"]["phase"] for r in runs.values())
    assert outcomes == {"Completed": len(ids)}, f"{outcomes} {context}: " + str(
        {n: r["status"] for n, r in runs.items() if r["status"]["phase"] != "Completed"}
    )
    # None lost, none created twice: the runs of this round's ledger are those triggered.
    of_ledger = {
        name
        for name, run in stack.runs().items()
        if (run["spec"].get("payload") or {}).get("ledger") == str(ledger.path)
    }
    assert of_ledger == set(ids), f"runs not triggered, or lost {context}"
    phases.assert_each_ended_once(ids, context, across_restarts=True)
    ledger.assert_not_executed_after_success(runs, context)
    ledger.assert_completions_returned(runs, context)
    ledger.assert_no_attempt_started_twice()
    pods.assert_one_pod_per_attempt(ids, context)
    for name, run in runs.items():
        seen = pods.pods(name)
        assert set(seen) == {a["number"] for a in run["status"]["attempts"]}, (
            f"{name}: pods {seen} for attempts {run['status']['attempts']} {context}"
        )


def _payloads(ledger: Ledger, count: int) -> list[dict[str, Any]]:
    return [ledger.payload(i=i) for i in range(count)]


@pytest.mark.parametrize("round_", range(MIXED_ROUNDS))
def test_random_parts_of_podtask_dev_killed_under_load(
    dev_stack: DevUnderFaults,
    dev_watches: tuple[PhaseWatch, PodWatch],
    tmp_path: Path,
    round_: int,
) -> None:
    seed, rng = seeded(200 + round_)
    ledger = Ledger(tmp_path / "ledger")
    load = Load(
        dev_stack, TASK, _payloads(ledger, MIXED_RUNS), f"mixed-{seed}", rng, spread=MIXED_FAULTS
    ).start()
    faults = inject_dev_faults(dev_stack, rng, MIXED_FAULTS)
    context = f"(seed {seed}: PODTASK_FAULT_SEED={seed - 200 - round_} replays it; {faults})"
    ids = load.join()
    assert any(f in DEV_PARTS or f.startswith("runner of") for f in faults), context
    _check_round(dev_stack, ledger, ids, dev_watches, context)


@pytest.mark.parametrize("round_", range(RESTART_ROUNDS))
def test_podtask_dev_killed_and_started_again_under_load(
    dev_stack: DevUnderFaults,
    dev_watches: tuple[PhaseWatch, PodWatch],
    tmp_path: Path,
    round_: int,
) -> None:
    seed, rng = seeded(300 + round_)
    context = f"(seed {seed}: PODTASK_FAULT_SEED={seed - 300 - round_} replays it)"
    ledger = Ledger(tmp_path / "ledger")
    load = Load(
        dev_stack,
        TASK,
        _payloads(ledger, RESTART_RUNS),
        f"restart-{seed}",
        rng,
        spread=2 * RESTARTS,
    ).start()
    restart_dev_repeatedly(dev_stack, rng, RESTARTS)
    ids = load.join()
    _check_round(dev_stack, ledger, ids, dev_watches, context)
