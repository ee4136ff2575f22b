import pytest

from podtask import RetryPolicy, TaskDeclarationError, task
from podtask._contract.retry import retry_delay_ms
from podtask._control.attempt_tokens import (
    InvalidAttemptToken,
    sign_attempt_token,
    verify_attempt_token,
)


def test_task_declaration_defaults() -> None:
    @task(id="unit-defaults")
    def run(payload: object, ctx: object) -> object:
        return payload

    assert run.machine == "small-1x"
    assert run.queue.name == "unit-defaults"
    assert run.queue.concurrency_limit is None
    assert run.retry == RetryPolicy()
    assert run("x", None) == "x"  # type: ignore[arg-type]


def test_invalid_declarations_name_the_task_and_field() -> None:
    with pytest.raises(TaskDeclarationError, match="Not_Valid"):
        task(id="Not_Valid")
    with pytest.raises(TaskDeclarationError, match=r"'unit-bad-machine'.*valid machines"):
        task(id="unit-bad-machine", machine="giant")
    with pytest.raises(TaskDeclarationError, match=r"'unit-bad-retry'.*retry.*max_attempts"):
        task(id="unit-bad-retry", retry={"max_attempts": 0})


def test_duplicate_task_id_names_both_places() -> None:
    @task(id="unit-duplicate")
    def first(payload: object, ctx: object) -> None: ...

    with pytest.raises(
        TaskDeclarationError, match=r"declared twice.*test_tasks.py:\d+.*test_tasks.py"
    ):

        @task(id="unit-duplicate")
        def second(payload: object, ctx: object) -> None: ...


def test_retry_delay_follows_the_policy() -> None:
    policy = RetryPolicy(min_timeout_ms=1000, factor=2, max_timeout_ms=5000, randomize=False)
    assert [retry_delay_ms(policy, n) for n in (1, 2, 3, 4)] == [1000, 2000, 4000, 5000]
    jittered = RetryPolicy(min_timeout_ms=1000, factor=2, randomize=True)
    assert retry_delay_ms(jittered, 2, random=lambda: 0.5) == 3000


def test_attempt_tokens_are_scoped_and_expire() -> None:
    secret = b"s" * 32
    token = sign_attempt_token(secret, "run-abc", 2, ttl_seconds=60, now=1000)
    claims = verify_attempt_token(secret, token, now=1030)
    assert (claims.run, claims.attempt) == ("run-abc", 2)
    with pytest.raises(InvalidAttemptToken, match="expired"):
        verify_attempt_token(secret, token, now=1061)
    with pytest.raises(InvalidAttemptToken, match="signature"):
        verify_attempt_token(b"o" * 32, token, now=1030)
    _, _, sig = token.partition(".")
    forged = sign_attempt_token(secret, "run-other", 2, ttl_seconds=60, now=1000).split(".")[0]
    with pytest.raises(InvalidAttemptToken):
        verify_attempt_token(secret, f"{forged}.{sig}", now=1030)
