"""process-order and charge-card: a task that waits, and gives its queue's slot back meanwhile.

As Trigger.dev's `triggerAndWait`, `wait.for` and `idempotencyKeys.create`: both tasks share
the queue `orders` of one run at a time, and the parent waits on its child all the same.
While it waits its run is `Waiting`: its pod runs on, but the slot is the child's. The
child's key is scoped to the parent's run, so a retry of the parent gets the same charge
back instead of charging again. Its pause (`wait.for_`; `for` is a Python keyword) holds no
slot either, and is not counted in its `max_duration`.
"""

from typing import Any

from podtask import Context, idempotency_keys, queue, task, wait

orders = queue("orders", concurrency_limit=1)


@task(id="charge-card", queue=orders)
def charge_card(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    return {"order": payload["order"], "charged": payload["amount"]}


@task(id="process-order", queue=orders, max_duration=60)
def process_order(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    key = idempotency_keys.create(f"charge-{payload['order']}")  # scope "run" by default
    charge = charge_card.trigger_and_wait(
        {"order": payload["order"], "amount": payload.get("amount", 10)}, idempotency_key=key
    )
    wait.for_(seconds=payload.get("cool_down_seconds", 1))
    return {"order": payload["order"], "charge": charge.unwrap(), "chargeRunId": charge.id}
