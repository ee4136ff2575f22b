"""Tasks that end badly on purpose, one way each."""

from typing import Any

from podtask import Context, task


@task(id="always-fails", retry={"max_attempts": 1})
def always_fails(payload: Any, ctx: Context) -> None:
    raise ValueError(f"kaboom on attempt {ctx.attempt}")


@task(id="returns-a-set", retry={"max_attempts": 1})
def returns_a_set(payload: Any, ctx: Context) -> object:
    return {1, 2, 3}
