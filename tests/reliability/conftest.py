"""The stack the fault-injection tests share, and how long they go on.

`make test` runs each test's short version; `make soak` (PODTASK_SOAK=1) the long one. A
round's random choices come from a seed that its failure messages name; set
PODTASK_FAULT_SEED to replay it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.composed import ComposedStack
from tests.reliability.faults import DevUnderFaults, PhaseWatch, PodWatch

TASK_MODULES = Path(__file__).parent / "task_modules"
SOAK = os.environ.get("PODTASK_SOAK") == "1"


def soak_or_short(soak: int, short: int) -> int:
    return soak if SOAK else short


def seeded(round_: int) -> tuple[int, random.Random]:
    """The seed of one round, and its random source."""
    base = int(os.environ.get("PODTASK_FAULT_SEED") or random.SystemRandom().randrange(2**32))
    seed = base + round_
    return seed, random.Random(seed)


@pytest.fixture(scope="package")
def composed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposedStack]:
    stack = ComposedStack(
        tmp_path_factory.mktemp("reliability"), [str(TASK_MODULES / "ledger_tasks.py")]
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="package")
def phases(composed: ComposedStack) -> Iterator[PhaseWatch]:
    watch = PhaseWatch(str(composed.cluster.kubeconfig_path)).start()
    try:
        yield watch
    finally:
        watch.stop()


@pytest.fixture(scope="package")
def dev_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevUnderFaults]:
    """The real `podtask dev`, for faults in its parts and in itself."""
    stack = DevUnderFaults(
        [str(TASK_MODULES / "ledger_tasks.py")], tmp_path_factory.mktemp("dev") / ".podtask"
    ).start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def dev_watches(dev_stack: DevUnderFaults) -> Iterator[tuple[PhaseWatch, PodWatch]]:
    """Phases and pods of `dev_stack`, watched from outside it for one test."""
    phases = PhaseWatch(dev_stack.kubeconfig).start()
    pods = PodWatch(dev_stack.kubeconfig).start()
    try:
        yield phases, pods
    finally:
        phases.stop()
        pods.stop()
