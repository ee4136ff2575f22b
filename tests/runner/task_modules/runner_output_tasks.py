"""Tasks that write their output every way a process can, for the runner's copy of its log."""

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from podtask import Context, task


@task(id="runner-writes-everywhere", retry={"max_attempts": 1})
def writes_everywhere(payload: Any, ctx: Context) -> str:
    print("to stdout with print")
    print("to stderr with print", file=sys.stderr)
    os.write(1, b"to fd 1 directly\n")
    subprocess.run([sys.executable, "-c", "print('from a child process')"], check=True)
    sys.stdout.write("accents: h\u00e9llo \u2603\n")
    return "written"


@task(id="runner-writes-then-waits", retry={"max_attempts": 1})
def writes_then_waits(payload: Any, ctx: Context) -> None:
    print("working on it", flush=True)
    # Tells the test it has started; then waits to be stopped.
    Path(os.environ["RUNNER_TEST_FLAG"]).touch()
    time.sleep(60)


@task(id="runner-writes-a-lot", retry={"max_attempts": 1})
def writes_a_lot(payload: dict[str, int], ctx: Context) -> None:
    line = "x" * 99
    for n in range(payload["lines"]):
        print(f"{n:08d} {line}")
