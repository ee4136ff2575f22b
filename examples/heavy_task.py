"""heavy-task: a task that asks for a large machine (4 vCPU, 8 GB).

Its pod gets the large-1x preset as limits; here it sums primes to have
something to chew on.
"""

from typing import Any

from podtask import Context, task


def _primes_below(limit: int) -> list[int]:
    sieve = bytearray([1]) * limit
    sieve[0:2] = b"\x00\x00"
    for n in range(2, int(limit**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytearray(len(range(n * n, limit, n)))
    return [n for n in range(limit) if sieve[n]]


@task(id="heavy-task", machine="large-1x", max_duration=300)
def heavy_task(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    primes = _primes_below(int(payload.get("limit", 1_000_000)))
    return {
        "machine": ctx.machine.name,
        "cpu": ctx.machine.cpu,
        "memoryGb": ctx.machine.memory_gb,
        "primes": len(primes),
        "largest": primes[-1],
    }
