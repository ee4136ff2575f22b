"""`bench/stack_cpu.py`: the most runs a second a machine's cores allow at a run's CPU cost."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from stack_cpu import KUBERNETES_PARTS, runs_per_s_bound

pytestmark = pytest.mark.unit

SPENT = {"kube-apiserver": 50.0, "etcd": 10.0, "operator": 12.0, "api": 8.0, "runner": 0.0}


def test_all_parts_together_bound_the_rate_of_a_cpu_bound_run() -> None:
    # 80 ms a run on 2 cores: 2,000 ms of CPU a second serve 25 runs.
    assert runs_per_s_bound(SPENT, 2) == pytest.approx(25.0)


def test_kubernetes_parts_alone_bound_it_whatever_podtasks_parts_spend() -> None:
    # kube-apiserver and etcd, 60 ms a run (the scheduler and controller-manager spent none).
    assert runs_per_s_bound(SPENT, 2, KUBERNETES_PARTS) == pytest.approx(2000 / 60)
    assert runs_per_s_bound(SPENT, 4, KUBERNETES_PARTS) == pytest.approx(4000 / 60)


def test_parts_that_spent_nothing_bound_nothing() -> None:
    assert runs_per_s_bound(SPENT, 2, ["runner", "node-agent"]) is None
    assert runs_per_s_bound({}, 2) is None
