"""retry: a task that fails twice, then succeeds on its third attempt.

The retry policy decides the gaps: 200 ms after the first failure, 400 ms after
the second (min_timeout * factor^(n-1)); `randomize=False` keeps them exact.
"""

from typing import Any

from podtask import Context, task


@task(
    id="retry-example",
    retry={"max_attempts": 5, "min_timeout_ms": 200, "factor": 2, "randomize": False},
)
def retry_example(payload: dict[str, Any], ctx: Context) -> dict[str, int]:
    if ctx.attempt < 3:
        raise RuntimeError(f"attempt {ctx.attempt} fails on purpose")
    print(f"attempt {ctx.attempt} succeeds")
    return {"succeededOnAttempt": ctx.attempt}
