"""Runners SIGKILLed at random points: each killed attempt is recorded as killed (not out
of memory) and retried, every run ends exactly once, and nothing runs after a success."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.composed import ComposedStack
from tests.e2e.conftest import wait_until
from tests.reliability.conftest import seeded, soak_or_short
from tests.reliability.faults import PhaseWatch, kill_runners, runners
from tests.reliability.ledger import Ledger

ROUNDS = soak_or_short(3, 1)
RUNS = soak_or_short(40, 15)
KILLS = soak_or_short(15, 4)


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_killed_runners_are_retried_and_nothing_runs_twice(
    composed: ComposedStack, phases: PhaseWatch, tmp_path: Path, round_: int
) -> None:
    seed, rng = seeded(100 + round_)
    context = f"(seed {seed}: PODTASK_FAULT_SEED={seed - 100 - round_} replays it)"
    ledger = Ledger(tmp_path / "ledger")
    created_before = len(composed.created_in("ledger"))
    ids = composed.batch("ledger-retried", [ledger.payload(i=i) for i in range(RUNS)])

    killed = kill_runners(rng, KILLS, spare=composed_runs_not_in(composed, ids))

    runs = composed.wait_all(ids, timeout=600)
    outcomes = Counter(r["status"]["phase"] for r in runs.values())
    assert outcomes == {"Completed": RUNS}, f"{outcomes} {context}"
    assert killed, f"no runner was found to kill {context}"
    for victim in killed:
        attempts = runs[victim.run]["status"]["attempts"]
        entry = attempts[victim.attempt - 1]
        if entry.get("reason") == "Completed":
            continue  # it had reported its success already: the kill changed nothing
        assert entry["reason"] == "Killed", f"{victim}: {entry} {context}"
        assert entry["error"]["type"] == "TaskKilledError", context
        assert entry["exitCode"] == 137, context
        following = attempts[victim.attempt]
        assert following["machine"] == entry["machine"], f"{victim}: {attempts} {context}"
    ledger.assert_not_executed_after_success(runs, context)
    ledger.assert_no_attempt_started_twice()
    phases.assert_each_ended_once(ids, context)
    pods = Counter(c.name for c in composed.created_in("ledger")[created_before:])
    assert max(pods.values()) == 1, f"an attempt had two pods {context}"


def composed_runs_not_in(composed: ComposedStack, ids: list[str]) -> set[str]:
    """Runs of other tests in the shared stack: theirs to keep."""
    wanted = set(ids)
    return {r["metadata"]["name"] for r in composed.runs()} - wanted


def test_a_runner_killed_by_hand_is_killed_not_out_of_memory(
    composed: ComposedStack, tmp_path: Path
) -> None:
    """Acceptance 4 of issue 9: SIGKILL of the runner is no OOM, even for a task with an
    out-of-memory machine: a system retry, on the same machine."""
    ledger = Ledger(tmp_path / "ledger")
    run_id = composed.trigger("ledger-oom-policy", ledger.payload(seconds=[3, 3]))
    # Its body has started (first ledger line): kill the runner mid-task.
    wait_until(lambda: ledger.count("start").get((run_id, 1)), timeout=60)
    (victim,) = [r for r in runners() if r.run == run_id]
    os.kill(victim.pid, signal.SIGKILL)

    run = composed.wait_for(run_id, timeout=120)
    assert run["status"] == "Completed", run
    first, second = run["attempts"]
    assert (first["reason"], first["exitCode"]) == ("Killed", 137), first
    assert first["error"]["type"] == "TaskKilledError"
    assert "signal 9" in first["error"]["message"]
    assert first["machine"] == second["machine"] == "small-1x"
    assert run["output"]["machine"] == "small-1x"
    pod = json.loads(composed.kubectl("get", "pod", f"{run_id}-1", "-o", "json"))
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("Error", 137)
    assert ledger.count("returned") == {(run_id, 2): 1}
