"""Tasks of the Test page's browser tests (tests/dashboard/test_dashboard_test_page.py): one
with a pydantic payload model (its JSON schema fills in the example and checks the payload in
the browser) that returns what it was given and `ctx.is_test`; one that takes a while, on a
queue of its own, for the Queues page to pause and resume."""

import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from podtask import Context, task


class Tone(StrEnum):
    WARM = "warm"
    DRY = "dry"


class Address(BaseModel):
    city: str = Field(min_length=2)
    postcode: str | None = Field(default=None, pattern=r"^[0-9]{5}$")


class Greeting(BaseModel):
    """Whom to greet, and how."""

    name: str = Field(min_length=1, max_length=40)
    times: int = Field(default=1, ge=1, le=5)
    tone: Tone = Tone.WARM
    address: Address | None = None
    tags: list[str] = Field(default_factory=list, max_length=3)


@task(id="dashboard-greet", queue={"name": "dashboard-greetings"})
def dashboard_greet(payload: Greeting, ctx: Context) -> dict[str, Any]:
    return {
        "greeting": " ".join([f"hello {payload.name}"] * payload.times),
        "tone": payload.tone.value,
        "isTest": ctx.is_test,
    }


@task(id="dashboard-held", queue={"name": "dashboard-held", "concurrency_limit": 1})
def dashboard_held(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    time.sleep(float(payload.get("seconds", 0)))
    return {"slept": payload.get("seconds", 0), "isTest": ctx.is_test}
