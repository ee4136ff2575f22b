"""The task the tests deploy and trigger when any task will do: `hello-world`, as
`podtask deploy` would register it (shared by the API's, the run builder's and the
operator's schedule tests)."""

from __future__ import annotations

from podtask._contract.resources import QueueRef, RetryPolicy, TaskSpec

HELLO = TaskSpec(
    task_id="hello-world",
    image="registry.local/tasks:1",
    module="tasks.hello",
    version="20240501.1",
    retry=RetryPolicy(max_attempts=5),
    queue=QueueRef(name="greetings", concurrency_limit=2),
    machine="small-1x",
    max_duration_seconds=300,
)
