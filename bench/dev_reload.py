"""How long `podtask dev` takes to register a saved task module (issue 13: "within 2 s").

Starts `podtask dev` on a module of its own, then saves it N times, each save changing a task's
`max_attempts` and adding a task, and measures from the save until the API lists the new
registration (what a trigger right after would see). Prints each measure, the median and the
worst, and the machine's load: absolute times drift with it.

Usage: python bench/dev_reload.py [--saves N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from podtask._cli.devprocess import DevProcess, save_as_an_editor

MODULE = """\
from podtask import task


@task(id="changing", retry={{"max_attempts": {attempts}}})
def changing(payload, ctx):
    return payload


@task(id="added-{n}")
def added(payload, ctx):
    return payload
"""


def measure(dev: DevProcess, module: Path, n: int) -> float:
    headers = {"Authorization": f"Bearer {dev.api_key}"}
    with httpx.Client(base_url=dev.api_url, headers=headers, timeout=30) as api:
        saved_at = time.perf_counter()
        save_as_an_editor(module, MODULE.format(attempts=n % 9 + 1, n=n))
        while True:
            tasks = {t["id"]: t for t in api.get("/api/v1/tasks").json()["data"]}
            if f"added-{n}" in tasks and tasks["changing"]["retry"]["maxAttempts"] == n % 9 + 1:
                return time.perf_counter() - saved_at
            time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--saves", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        module = project / "changing_tasks.py"
        module.write_text(MODULE.format(attempts=1, n=0))
        with DevProcess([str(module)], project / ".podtask", cwd=project) as dev:
            seconds = []
            for n in range(1, args.saves + 1):
                seconds.append(measure(dev, module, n))
                print(f"save {n}: registered {seconds[-1]:.2f} s after it", flush=True)
                time.sleep(0.5)
    load = os.getloadavg()[0]
    print(
        f"podtask dev registered a saved module in {statistics.median(seconds):.2f} s "
        f"(median of {len(seconds)}), {max(seconds):.2f} s at worst; load average {load:.1f} "
        f"on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
