"""Electors against the embedded cluster's Lease: one leads; a killed leader's Lease expires
before a standby takes over; a released one is taken over at once; a leader that cannot renew,
or finds the Lease taken, knows it has lost before its Lease could expire."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from podtask._contract.resources import parse_timestamp
from podtask_devcluster import EmbeddedCluster
from podtask_operator.kube_login import kubeconfig_login
from podtask_operator.leadership import (
    LeaderElector,
    LeadershipLost,
    LeaseConflict,
    LeaseKeeper,
    LeaseStore,
    format_lease_time,
)
from tests.embedded_kube import EmbeddedKube, run_then_close

# Not unit (tests/tiers.py): electors against an embedded cluster.
pytestmark = pytest.mark.component

LEASE = "podtask-operator"


@pytest.fixture
def store(embedded_kube: EmbeddedKube) -> LeaseStore:
    namespace = embedded_kube.new_namespace("lease")
    return LeaseStore(embedded_kube.login, namespace.name, LEASE, request_timeout=5)


def elector(store: LeaseStore, name: str, duration: int = 2, renew: float = 0.25) -> LeaderElector:
    return LeaderElector(store, name, duration_seconds=duration, renew_seconds=renew)


async def lease_spec(store: LeaseStore) -> dict[str, Any]:
    lease = await store.read()
    assert lease is not None
    spec: dict[str, Any] = lease["spec"]
    return spec


def test_of_two_racing_replicas_exactly_one_leads(store: LeaseStore) -> None:
    async def scenario() -> None:
        # Both see no Lease and create it: the API server lets one create win.
        first = await asyncio.gather(
            elector(store, "a").try_acquire(), elector(store, "b").try_acquire()
        )
        assert sorted(first) == [False, True]
        # Both see the holder's Lease expired and replace it: the resourceVersion lets one win.
        lease = await store.read()
        assert lease is not None
        expired = {**lease["spec"], "holderIdentity": "gone", "renewTime": "2020-01-01T00:00:00Z"}
        await store.replace(lease, expired)
        second = await asyncio.gather(
            elector(store, "c").try_acquire(), elector(store, "d").try_acquire()
        )
        assert sorted(second) == [False, True]
        assert (await lease_spec(store))["holderIdentity"] in ("c", "d")

    run_then_close(store, scenario())


def test_a_killed_leader_is_replaced_only_after_its_lease_expires(store: LeaseStore) -> None:
    async def scenario() -> None:
        leader, standby = elector(store, "leader"), elector(store, "standby")
        assert await leader.acquire()
        renewing = asyncio.create_task(leader.keep_leading())
        waiting = asyncio.create_task(standby.acquire())
        # Longer than the Lease duration: only the renewals keep the standby out.
        await asyncio.sleep(2.5)
        assert not waiting.done()
        renewing.cancel()  # killed: no release
        last_renewal = parse_timestamp((await lease_spec(store))["renewTime"])
        assert await asyncio.wait_for(waiting, timeout=10)
        taken = await lease_spec(store)
        assert taken["holderIdentity"] == "standby"
        assert last_renewal is not None
        acquired = parse_timestamp(taken["acquireTime"])
        assert acquired is not None and acquired > last_renewal + timedelta(seconds=2)
        assert taken["leaseTransitions"] == 1

    run_then_close(store, scenario())


def test_a_released_lease_is_taken_over_at_once(store: LeaseStore) -> None:
    async def scenario() -> None:
        # A long Lease: the standby can only get it this soon because it was released.
        leader = elector(store, "leader", duration=60, renew=0.2)
        standby = elector(store, "standby", duration=60, renew=0.2)
        assert await leader.acquire()
        waiting = asyncio.create_task(standby.acquire())
        await asyncio.sleep(0.5)
        assert not waiting.done()
        released_at = parse_timestamp((await lease_spec(store))["renewTime"])
        await leader.release()
        assert await asyncio.wait_for(waiting, timeout=10)
        taken = await lease_spec(store)
        assert taken["holderIdentity"] == "standby"
        acquired = parse_timestamp(taken["acquireTime"])
        assert released_at is not None and acquired is not None
        assert acquired < released_at + timedelta(seconds=60)

    run_then_close(store, scenario())


def test_a_standby_stops_waiting_when_told_to(store: LeaseStore) -> None:
    async def scenario() -> None:
        assert await elector(store, "leader", duration=60).acquire()
        stop = asyncio.Event()
        waiting = asyncio.create_task(elector(store, "standby", duration=60).acquire(stop))
        await asyncio.sleep(0.3)
        stop.set()
        assert await asyncio.wait_for(waiting, timeout=5) is False

    run_then_close(store, scenario())


def test_a_leader_that_finds_the_lease_taken_has_lost(store: LeaseStore) -> None:
    async def scenario() -> None:
        leader = elector(store, "leader", duration=60, renew=0.2)
        assert await leader.acquire()
        lease = await store.read()
        assert lease is not None
        now = format_lease_time(datetime.now(UTC))
        await store.replace(lease, {**lease["spec"], "holderIdentity": "usurper", "renewTime": now})
        with pytest.raises(LeadershipLost, match="usurper"):
            await asyncio.wait_for(leader.keep_leading(), timeout=10)

    run_then_close(store, scenario())


def test_a_leader_that_cannot_renew_gives_up_before_its_lease_expires(tmp_path: Path) -> None:
    cluster = EmbeddedCluster(tmp_path / "state", port=0).start()
    store = LeaseStore(
        kubeconfig_login([Path(cluster.kubeconfig_path)]), "default", LEASE, request_timeout=0.5
    )
    try:

        async def scenario() -> None:
            # The elector's own clock, read back: when its one renewal began, and the reading
            # it decided on.
            readings: list[float] = []

            def clock() -> float:
                readings.append(time.monotonic())
                return readings[-1]

            leader = LeaderElector(
                store, "leader", duration_seconds=2, renew_seconds=0.5, monotonic=clock
            )
            assert await leader.acquire()
            renewed = readings[-1]
            cluster.stop()  # every renewal fails from now on
            with pytest.raises(LeadershipLost, match="no renewal"):
                await asyncio.wait_for(leader.keep_leading(), timeout=60)
            # It kept trying until its renew deadline, which falls before the Lease expires
            # for a standby (2 s after the last renewal).
            assert readings[-1] - renewed >= leader.renew_deadline
            assert leader.renew_deadline < leader.duration_seconds

        run_then_close(store, scenario())
    finally:
        cluster.stop()


def wait_until(check: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {check}"
        time.sleep(0.05)


async def usurp(store: LeaseStore) -> None:
    """Write another holder into the Lease, read again as often as a renewal slips in."""
    while True:
        lease = await store.read()
        assert lease is not None
        try:
            await store.replace(lease, {**lease["spec"], "holderIdentity": "usurper"})
            return
        except LeaseConflict:
            continue


def test_the_keeper_renews_on_its_own_thread_and_reports_the_loss(store: LeaseStore) -> None:
    leader = elector(store, "leader", duration=2, renew=0.25)
    assert run_then_close(store, leader.acquire())
    first = run_then_close(store, lease_spec(store))["renewTime"]
    lost: list[str] = []
    keeper = LeaseKeeper(leader, on_lost=lost.append)
    keeper.start()
    try:
        # Past the Lease duration, with no event loop of ours running: the keeper renewed it.
        time.sleep(2.2)
        spec = run_then_close(store, lease_spec(store))
        assert spec["holderIdentity"] == "leader" and spec["renewTime"] > first
        assert not lost
        run_then_close(store, usurp(store))
        wait_until(lambda: lost, 5)
        assert "usurper" in lost[0]
    finally:
        keeper.stop(timeout=5)


def test_a_stopped_keeper_renews_no_more(store: LeaseStore) -> None:
    leader = elector(store, "leader", duration=2, renew=0.25)
    assert run_then_close(store, leader.acquire())
    keeper = LeaseKeeper(leader, on_lost=lambda reason: pytest.fail(reason))
    keeper.start()
    time.sleep(0.3)
    keeper.stop(timeout=5)
    stopped = run_then_close(store, lease_spec(store))["renewTime"]
    time.sleep(0.6)
    assert run_then_close(store, lease_spec(store))["renewTime"] == stopped
