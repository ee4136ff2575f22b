"""`container_restarts`: which ends start a container again, kubelet's back-off, and how a
kubelet words the wait (pure)."""

from __future__ import annotations

from podtask_devcluster.container_restarts import (
    BackOff,
    back_off_message,
    crash_loop_waiting,
    go_duration,
    next_start,
    restart_policy,
    starts_again,
)

POD = {"metadata": {"name": "web", "namespace": "shop", "uid": "u-1"}, "spec": {}}


def test_the_policy_says_which_ends_start_the_container_again() -> None:
    assert restart_policy(POD) == "Always"  # as the apiserver defaults it
    assert restart_policy({"spec": {"restartPolicy": "Never"}}) == "Never"
    assert starts_again("Always", 0) and starts_again("Always", 1)
    assert starts_again("OnFailure", 137) and not starts_again("OnFailure", 0)
    assert not starts_again("Never", 1)


def test_the_first_end_starts_at_once_then_the_wait_doubles_up_to_its_cap() -> None:
    backoff, now, waits = BackOff(), 0.0, []
    for _ in range(8):
        wait, backoff = next_start(backoff, now)
        waits.append(wait)
        now += wait + 1  # it runs a second, then ends again
    assert waits == [0, 10, 20, 40, 80, 160, 300, 300]


def test_a_container_that_ran_well_starts_over() -> None:
    _, backoff = next_start(BackOff(), 0.0)
    wait, backoff = next_start(backoff, 5.0)
    assert wait == 10 and backoff.delay == 20
    # Its back-off was set at 15 s; ending more than twice the cap later starts over.
    assert next_start(backoff, 15.0 + 600.0)[0] == 20
    assert next_start(backoff, 15.0 + 601.0) == (0.0, BackOff(10.0, 616.0))


def test_the_wait_is_worded_as_a_kubelet_words_it() -> None:
    assert [go_duration(s) for s in (1, 10, 80, 160, 300)] == [
        "1s",
        "10s",
        "1m20s",
        "2m40s",
        "5m0s",
    ]
    assert crash_loop_waiting(80, "main", POD) == {
        "reason": "CrashLoopBackOff",
        "message": "back-off 1m20s restarting failed container=main pod=web_shop(u-1)",
    }
    assert back_off_message("main", POD) == (
        "Back-off restarting failed container main in pod web_shop(u-1)"
    )
