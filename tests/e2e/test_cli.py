"""The `podtask` command against `podtask dev`, on runs that really run: `trigger --wait`,
`runs get` with every attempt of a retried run, `runs replay --wait`, an idempotent trigger
said plainly, and `-o json` printing what the API answers."""

import json
import os
import re
import subprocess
import sys
import uuid

from tests.e2e.conftest import ROOT, Stack


def podtask(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODTASK_")}
    env |= {"PODTASK_API_URL": stack.dev.api_url, "PODTASK_API_KEY": stack.dev.api_key}
    return subprocess.run(
        [sys.executable, "-m", "podtask._cli.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_retried_run_waited_for_read_and_replayed_on_the_command_line(stack: Stack) -> None:
    waited = podtask(stack, "trigger", "retry-example", "--wait", "--timeout", "240", "-o", "json")
    assert waited.returncode == 0, waited.stderr
    run = json.loads(waited.stdout)  # the finished run, as the API answers it
    run_id = run["id"]
    assert run == stack.run(run_id) and run["status"] == "Completed"
    assert waited.stderr.splitlines()[-1] == f"{run_id}: Completed"

    details = podtask(stack, "runs", "get", run_id)
    assert details.returncode == 0, details.stderr
    table = details.stdout.split("\nAttempts:\n", 1)[1].split("\n\n", 1)[0]
    rows = [re.split(" {2,}", line) for line in table.splitlines()[1:]]
    assert [(r[0], r[1], r[5], r[6]) for r in rows] == [
        ("1", "small-1x", "1", "Error"),
        ("2", "small-1x", "1", "Error"),
        # Completed by its report, before its pod exited: no exit code (docs/kubectl.md)
        ("3", "small-1x", "-", "Completed"),
    ]
    assert rows[0][7] == "RuntimeError: attempt 1 fails on purpose" and rows[2][7] == "-"

    replayed = podtask(stack, "runs", "replay", run_id, "--wait", "--timeout", "240")
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout) == {"succeededOnAttempt": 3}
    first = replayed.stderr.splitlines()[0]
    assert re.fullmatch(rf"Replayed {run_id} as run-\S+", first), first


def test_a_trigger_with_a_used_idempotency_key_says_it_found_the_run(stack: Stack) -> None:
    key = f"cli-{uuid.uuid4().hex}"
    trigger = ("trigger", "hello-world", "--payload", '{"name": "Ada"}', "--idempotency-key", key)
    first = podtask(stack, *trigger, "--wait", "--timeout", "240")
    assert first.returncode == 0, first.stderr
    run_id = first.stderr.splitlines()[0].removeprefix("Triggered ")
    again = podtask(stack, *trigger, "--wait", "--timeout", "240")
    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines()[0] == f"existing run {run_id} (same idempotency key)"
    assert json.loads(again.stdout) == json.loads(first.stdout) == {"message": "hello Ada"}
