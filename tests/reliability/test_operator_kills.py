"""Acceptance 1 of issue 9: the operator SIGKILLed and restarted again and again while runs
execute; every body that returned did so exactly once, and every run completed, once. And
an operator frozen past its Lease exits when it wakes (crash-only), losing nothing."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.composed import ComposedStack
from tests.e2e.conftest import wait_until
from tests.reliability.conftest import seeded, soak_or_short
from tests.reliability.faults import PhaseWatch, restart_operator_repeatedly
from tests.reliability.ledger import Ledger

ROUNDS = soak_or_short(3, 1)
RUNS = soak_or_short(100, 40)
KILLS = soak_or_short(6, 2)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_operator_restarts_execute_nothing_twice(
    composed: ComposedStack, phases: PhaseWatch, tmp_path: Path, round_: int
) -> None:
    seed, rng = seeded(round_)
    context = f"(seed {seed}: PODTASK_FAULT_SEED={seed - round_} replays it)"
    ledger = Ledger(tmp_path / "ledger")
    created_before = len(composed.created_in("ledger"))
    ids = composed.batch("ledger-once", [ledger.payload(i=i) for i in range(RUNS)])

    restart_operator_repeatedly(composed, rng, KILLS)

    runs = composed.wait_all(ids, timeout=600)
    outcomes = Counter(r["status"]["phase"] for r in runs.values())
    assert outcomes == {"Completed": RUNS}, f"{outcomes} {context}: " + str(
        {
            n: r["status"].get("error")
            for n, r in runs.items()
            if r["status"]["phase"] != "Completed"
        }
    )
    ledger.assert_each_returned_once(ids, context)
    ledger.assert_no_attempt_started_twice()
    phases.assert_each_ended_once(ids, context)
    pods = Counter(c.name for c in composed.created_in("ledger")[created_before:])
    assert max(pods.values()) == 1, f"an attempt had two pods {context}"
    assert set(pods) == {f"{name}-1" for name in ids}, context


def test_an_operator_frozen_past_its_lease_exits_and_its_restart_loses_nothing(
    composed: ComposedStack, phases: PhaseWatch, tmp_path: Path
) -> None:
    """A leader stalled longer than its Lease (SIGSTOP: a starved machine, a long pause)
    must not go on leading when it wakes: it exits, and started again, as its Deployment
    would, completes every run once."""
    assert composed.operator is not None
    ledger = Ledger(tmp_path / "ledger")
    created_before = len(composed.created_in("ledger"))
    restarts_before = len(composed.operator_restarts)
    ids = composed.batch("ledger-once", [ledger.payload(i=i, seconds=[2, 4]) for i in range(10)])
    # Frozen while it leads: once it started a pod.
    wait_until(lambda: len(composed.created_in("ledger")) > created_before, timeout=120)
    composed.operator.send_signal(signal.SIGSTOP)
    try:
        # Twice the Lease's 4 s: its renewals are overdue when it wakes.
        time.sleep(8)
    finally:
        composed.operator.send_signal(signal.SIGCONT)

    wait_until(lambda: len(composed.operator_restarts) > restarts_before, timeout=120)
    runs = composed.wait_all(ids, timeout=600)
    outcomes = Counter(r["status"]["phase"] for r in runs.values())
    assert outcomes == {"Completed": len(ids)}, f"{outcomes}: " + str(
        {n: r["status"] for n, r in runs.items() if r["status"]["phase"] != "Completed"}
    )
    ledger.assert_each_returned_once(ids)
    ledger.assert_no_attempt_started_twice()
    phases.assert_each_ended_once(ids)
    pods = Counter(c.name for c in composed.created_in("ledger")[created_before:])
    assert set(pods) == {f"{name}-1" for name in ids} and max(pods.values()) == 1
