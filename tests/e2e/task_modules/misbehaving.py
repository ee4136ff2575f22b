"""Tasks that end badly on purpose, one way each, and ones whose output is at an edge: the
largest the API accepts, and its own payload (whatever JSON the test sends)."""

from typing import Any

from podtask import Context, task
from podtask._contract.limits import MAX_OUTPUT_BYTES


@task(id="always-fails", retry={"max_attempts": 1})
def always_fails(payload: Any, ctx: Context) -> None:
    raise ValueError(f"kaboom on attempt {ctx.attempt}")


@task(id="returns-a-set", retry={"max_attempts": 1})
def returns_a_set(payload: Any, ctx: Context) -> object:
    return {1, 2, 3}


@task(id="largest-output", retry={"max_attempts": 1})
def largest_output(payload: Any, ctx: Context) -> str:
    """The largest output the API accepts: `<` takes 6 bytes as Kubernetes stores it."""
    return "<" * ((MAX_OUTPUT_BYTES - 2) // 6)


@task(id="returns-its-payload", retry={"max_attempts": 1})
def returns_its_payload(payload: Any, ctx: Context) -> Any:
    return payload
