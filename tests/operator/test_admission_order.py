"""The order of a bucket's pod creations: each turn waits for every turn handed out before
it, whichever order the starts get ready in or give up in."""

from __future__ import annotations

import asyncio

import pytest

from podtask_operator.admission_order import TurnLine, Withdrawn


async def _settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


@pytest.mark.anyio
async def test_turns_go_in_the_order_they_were_handed_out() -> None:
    line = TurnLine()
    turns = [line.next() for _ in range(3)]
    went: list[int] = []

    async def create(i: int) -> None:
        await turns[i].wait()
        went.append(i)
        turns[i].end()

    tasks = [asyncio.create_task(create(i)) for i in (2, 1, 0)]
    await asyncio.gather(*tasks)
    assert went == [0, 1, 2]
    assert line.idle


@pytest.mark.anyio
async def test_a_turn_ended_early_does_not_let_the_next_overtake_the_one_before_it() -> None:
    line = TurnLine()
    first, second, third = line.next(), line.next(), line.next()
    second.end()  # gave up before the first created its pod
    second.end()  # idempotent
    waiting = asyncio.create_task(third.wait())
    await _settle()
    assert not waiting.done()
    assert not line.idle
    first.end()
    await waiting
    third.end()
    assert line.idle


@pytest.mark.anyio
async def test_a_start_cancelled_while_it_waits_leaves_the_chain_whole() -> None:
    line = TurnLine()
    first, second, third = line.next(), line.next(), line.next()
    waiting = asyncio.create_task(second.wait())
    await _settle()
    waiting.cancel()
    second.end()  # its start's cleanup
    after = asyncio.create_task(third.wait())
    await _settle()
    assert not after.done()
    first.end()
    await after


@pytest.mark.anyio
async def test_a_start_whose_bucket_no_longer_admits_it_is_withdrawn_when_its_turn_comes() -> None:
    admitting = True
    line = TurnLine(lambda: admitting)
    first, second = line.next(), line.next()
    first.check()
    waiting = asyncio.create_task(second.wait())
    await _settle()
    admitting = False  # the queue is paused while `second` waits for its turn
    first.end()
    with pytest.raises(Withdrawn):
        await waiting
    second.end()
    await line.drained()
