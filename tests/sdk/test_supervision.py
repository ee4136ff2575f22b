"""When `podtask dev` restarts a part that died, and what it says."""

import signal

from podtask._cli.supervision import RestartBackoff, describe_exit, restart_notice


def test_backoff_doubles_up_to_its_maximum() -> None:
    backoff = RestartBackoff(first=0.5, factor=2, maximum=10, stable_after=30)
    assert [backoff.after_exit(uptime=1) for _ in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]


def test_backoff_starts_over_after_the_part_stayed_up() -> None:
    backoff = RestartBackoff(first=0.5, factor=2, maximum=10, stable_after=30)
    assert [backoff.after_exit(uptime=1) for _ in range(3)] == [0.5, 1, 2]
    assert backoff.after_exit(uptime=31) == 0.5
    assert backoff.after_exit(uptime=29) == 1


def test_exits_in_words() -> None:
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(-200) == "was killed by signal 200"
    assert restart_notice("operator", -9, 0.5) == (
        "the operator was killed by SIGKILL; restarting it in 0.5 s"
    )
