"""The Lease decision: who acquires, who renews, who waits; and what the Lease says after."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from podtask._contract.resources import parse_timestamp
from podtask_operator.leadership import (
    LeaseAction,
    claimed_spec,
    format_lease_time,
    lease_decision,
    lease_expiry,
    released_spec,
    renewal_overdue,
)
from podtask_operator.settings import OperatorSettings

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def held(by: str | None, renewed_ago: float, duration: int | None = 15) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "holderIdentity": by,
        "renewTime": format_lease_time(NOW - timedelta(seconds=renewed_ago)),
    }
    if duration is not None:
        spec["leaseDurationSeconds"] = duration
    return spec


@pytest.mark.parametrize(
    ("lease", "action"),
    [
        (None, LeaseAction.ACQUIRE),  # no Lease yet: create it
        ({}, LeaseAction.ACQUIRE),  # a Lease nobody ever held
        (held(None, 1), LeaseAction.ACQUIRE),  # released
        (held("", 1), LeaseAction.ACQUIRE),
        (held("me", 1), LeaseAction.RENEW),
        (held("me", 100), LeaseAction.RENEW),  # ours, even if late: renewing is still safe
        (held("other", 1), LeaseAction.WAIT),
        (held("other", 15), LeaseAction.WAIT),  # expires exactly now: not yet expired
        (held("other", 15.001), LeaseAction.ACQUIRE),
        (held("other", 100), LeaseAction.ACQUIRE),
        # The holder's declared duration wins over ours.
        (held("other", 20, duration=30), LeaseAction.WAIT),
        (held("other", 20, duration=None), LeaseAction.ACQUIRE),
        # No time at all cannot be trusted to be live.
        ({"holderIdentity": "other"}, LeaseAction.ACQUIRE),
        ({"holderIdentity": "other", "renewTime": "garbage"}, LeaseAction.ACQUIRE),
    ],
)
def test_lease_decision(lease: dict[str, Any] | None, action: LeaseAction) -> None:
    assert lease_decision(lease, "me", NOW, 15) is action


def test_acquire_time_counts_when_never_renewed() -> None:
    lease = {"holderIdentity": "other", "acquireTime": format_lease_time(NOW)}
    assert lease_decision(lease, "me", NOW + timedelta(seconds=10), 15) is LeaseAction.WAIT
    assert lease_decision(lease, "me", NOW + timedelta(seconds=16), 15) is LeaseAction.ACQUIRE


def test_lease_expiry() -> None:
    assert lease_expiry(held("other", 5, duration=15), 99) == NOW + timedelta(seconds=10)
    assert lease_expiry({"holderIdentity": "other"}, 15) is None


def test_lease_times_round_trip_as_micro_time() -> None:
    moment = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert format_lease_time(moment) == "2026-01-01T12:00:00.123456Z"
    assert parse_timestamp(format_lease_time(moment)) == moment
    assert parse_timestamp("2026-01-01T12:00:00Z") == moment.replace(microsecond=0)
    assert parse_timestamp("2026-01-01T12:00:00") == moment.replace(microsecond=0)
    assert parse_timestamp(None) is None
    assert parse_timestamp("") is None


def test_acquiring_a_new_lease() -> None:
    assert claimed_spec(None, "me", NOW, 15) == {
        "holderIdentity": "me",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-01-01T12:00:00.000000Z",
        "renewTime": "2026-01-01T12:00:00.000000Z",
        "leaseTransitions": 0,
    }


def test_taking_over_counts_a_transition() -> None:
    previous = {**held("other", 60), "acquireTime": "2025-12-31T00:00:00Z", "leaseTransitions": 4}
    spec = claimed_spec(previous, "me", NOW, 10)
    assert spec["holderIdentity"] == "me"
    assert spec["acquireTime"] == spec["renewTime"] == format_lease_time(NOW)
    assert spec["leaseDurationSeconds"] == 10
    assert spec["leaseTransitions"] == 5


def test_renewing_keeps_the_acquire_time() -> None:
    previous = {**held("me", 5), "acquireTime": "2025-12-31T00:00:00Z", "leaseTransitions": 4}
    spec = claimed_spec(previous, "me", NOW, 15)
    assert spec["acquireTime"] == "2025-12-31T00:00:00Z"
    assert spec["renewTime"] == format_lease_time(NOW)
    assert spec["leaseTransitions"] == 4


def test_a_released_lease_is_free_for_anyone_at_once() -> None:
    spec = released_spec(claimed_spec(None, "me", NOW, 15))
    assert spec["holderIdentity"] is None
    assert lease_decision(spec, "standby", NOW, 15) is LeaseAction.ACQUIRE


def test_renewal_is_overdue_at_the_deadline() -> None:
    assert not renewal_overdue(last_renewed=100.0, now=109.9, renew_deadline=10)
    assert renewal_overdue(last_renewed=100.0, now=110.0, renew_deadline=10)


def test_settings_need_room_for_a_retry_within_the_lease() -> None:
    settings = OperatorSettings(api_url="http://api", runner_token_secret="x" * 32)
    assert settings.leader_election
    assert (settings.lease_duration_seconds, settings.lease_renew_seconds) == (15, 5.0)
    with pytest.raises(ValidationError, match="at most half"):
        OperatorSettings(
            api_url="http://api",
            runner_token_secret="x" * 32,
            lease_duration_seconds=5,
            lease_renew_seconds=3,
        )
