"""out-of-memory: a task that needs more memory than its machine, and retries on a bigger one.

On small-1x (0.5 GB) it allocates past its limit and is OOMKilled; the retry
policy's `out_of_memory.machine` makes the next attempt run on medium-1x (2 GB),
where the same allocation fits.
"""

from typing import Any

from podtask import Context, task


@task(
    id="out-of-memory",
    machine="small-1x",
    retry={"max_attempts": 3, "min_timeout_ms": 100, "out_of_memory": {"machine": "medium-1x"}},
)
def out_of_memory(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    megabytes = int(payload.get("megabytes", 700))
    block = bytearray(megabytes * 1024 * 1024)
    # Touch every page so the memory is really resident, not just reserved.
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    return {"allocatedMb": megabytes, "machine": ctx.machine.name, "attempt": ctx.attempt}
