"""A run at the limits the API allows completes: a 512 KiB payload and the largest output,
through the API, the operator and a real runner, stored once and within the TaskRun budget."""

import json
import subprocess

from podtask._contract.json_values import compact_json, stored_size
from podtask._contract.limits import MAX_OUTPUT_BYTES, MAX_PAYLOAD_BYTES, MAX_TASK_RUN_BYTES
from tests.e2e.conftest import Stack


def test_the_largest_payload_and_output_complete(stack: Stack) -> None:
    payload = "<" * ((MAX_PAYLOAD_BYTES - 2) // 6)
    run_id = stack.trigger("largest-output", payload)
    run = stack.wait_for(run_id, timeout=120)
    assert run["status"] == "Completed", run.get("error")
    output = run["output"]
    assert output == "<" * ((MAX_OUTPUT_BYTES - 2) // 6)

    done = subprocess.run(
        ["kubectl", "get", "taskrun", run_id, "-o", "json"],
        env=stack.kube_env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    stored = json.loads(done.stdout)
    assert stored["spec"]["payload"] == payload
    assert stored["status"]["output"] == output
    assert "output" not in stored["status"]["report"]  # held once
    size = stored_size(compact_json(stored))
    assert size <= MAX_TASK_RUN_BYTES, size
