"""Tasks for the `podtask dev` supervision and sandbox tests."""

import os
import time
from typing import Any

from podtask import Context, task


@task(id="ledgered", queue={"name": "ledgered", "concurrency_limit": 10}, retry={"max_attempts": 3})
def ledgered(payload: dict[str, Any], ctx: Context) -> dict[str, int]:
    """Notes each execution in a ledger outside the stack, then works for a while."""
    with open(payload["ledger"], "a") as ledger:
        ledger.write(f"{ctx.run_id} {ctx.attempt}\n")
    time.sleep(float(payload.get("seconds", 0)))
    return {"attempt": ctx.attempt}


@task(id="daemonizing", retry={"max_attempts": 1})
def daemonizing(payload: dict[str, Any], ctx: Context) -> None:
    """Leaves a daemon behind (double fork, new session), then holds on for a while."""
    pidfile = payload["pidfile"]
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            with open(pidfile + ".tmp", "w") as out:
                out.write(str(os.getpid()))
            os.rename(pidfile + ".tmp", pidfile)
            time.sleep(300)
        os._exit(0)
    os.wait()
    while not os.path.exists(pidfile):
        time.sleep(0.01)
    time.sleep(float(payload.get("hold", 0)))
