"""`OutputTee` keeps the order in which a process wrote to its stdout and stderr, in the copy it
ships and in the container's log it passes on: a runner's process, fds and all."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.component

WRITES = 300

# Each print of the task is two writes when unbuffered (the text, then its newline); the
# runner's own line on stderr comes in between. Two pipes read by two threads let the
# stderr line overtake the newline.
CHILD = textwrap.dedent(
    f"""
    import os, sys
    from podtask_runner.output_capture import OutputTee

    copy = []
    tee = OutputTee(copy.append)
    tee.start()
    for i in range({WRITES}):
        os.write(1, b"out %d" % i)
        os.write(2, b"[runner] %d\\n" % i)
        os.write(1, b"\\n")
    tee.stop()
    with open(sys.argv[1], "wb") as shipped:
        shipped.write(b"".join(copy))
    """
)


def test_the_copy_and_the_log_keep_the_order_of_the_writes(tmp_path: Path) -> None:
    shipped = tmp_path / "shipped"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(shipped)], capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    expected = b"".join(b"out %d[runner] %d\n\n" % (i, i) for i in range(WRITES))
    assert shipped.read_bytes() == expected
    # The container's log: both streams, in the order written, as its stdout.
    assert done.stdout == expected
