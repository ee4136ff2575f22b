"""`RunBacklog`: runs named in bulk are worked off by a few workers, each run once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podtask_operator.run_backlog import RunBacklog


@pytest.mark.anyio
async def test_a_thousand_runs_are_worked_a_few_at_a_time_each_once() -> None:
    release = asyncio.Event()
    in_flight: set[str] = set()
    most = 0
    worked: list[str] = []
    started: list[str] = []
    tasks: set[asyncio.Task[Any]] = set()

    async def work(name: str) -> None:
        nonlocal most
        started.append(name)
        in_flight.add(name)
        most = max(most, len(in_flight))
        await release.wait()
        in_flight.discard(name)
        worked.append(name)
        if name == "run-7":
            raise RuntimeError("one failure does not stop the others")

    def spawn(coroutine: Any) -> None:
        tasks.add(asyncio.get_running_loop().create_task(coroutine))

    backlog = RunBacklog(work, spawn, workers=4)
    names = [f"run-{i}" for i in range(1000)]
    backlog.add(names)
    backlog.add(["run-999", "run-998"])  # named again before their turn: worked once
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(in_flight) == 4
    release.set()
    await asyncio.wait_for(backlog.drained(), timeout=30)
    assert most == 4
    assert started == names and sorted(worked) == sorted(names)  # oldest first, each once
    backlog.add([])
    await asyncio.wait_for(backlog.drained(), timeout=1)
    backlog.add(["again"])
    await asyncio.wait_for(backlog.drained(), timeout=30)
    assert worked[-1] == "again"
    await asyncio.gather(*tasks)
