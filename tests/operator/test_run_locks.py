"""A run's decisions one at a time; a lock kept only while it is held or awaited."""

from __future__ import annotations

import asyncio

import pytest

from podtask_operator.run_locks import RunLocks


@pytest.mark.anyio
async def test_decisions_on_one_run_take_turns_and_leave_no_lock_behind() -> None:
    locks = RunLocks()
    order: list[str] = []

    async def decide(name: str, tag: str, pause: float) -> None:
        async with locks.held(name):
            order.append(f"{tag} in")
            await asyncio.sleep(pause)
            order.append(f"{tag} out")

    await asyncio.gather(decide("a", "first", 0.02), decide("a", "second", 0), decide("b", "b", 0))
    assert order.index("first out") < order.index("second in")
    assert order.index("b in") < order.index("first out")  # another run is not held back
    assert len(locks) == 0


@pytest.mark.anyio
async def test_a_failed_decision_releases_its_lock() -> None:
    locks = RunLocks()
    with pytest.raises(RuntimeError):
        async with locks.held("a"):
            raise RuntimeError("boom")
    assert len(locks) == 0
    async with locks.held("a"):
        assert len(locks) == 1
