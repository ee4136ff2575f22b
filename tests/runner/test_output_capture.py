"""`OutputTee` in a process of its own (it takes over fds 1 and 2): the runner's own lines
stand where they were written, in the copy and in the container's log, however fast the
output around them comes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.component

# The child: a tee copying into a file; what it writes, between `start` and `stop`, comes
# from its argv (a list of "out:<text>", "err:<text>", "say:<text>", "flood:<bytes>").
CHILD = textwrap.dedent(
    """
    import os, sys
    from podtask_runner.output_capture import OutputTee, write_in_order

    copy = []
    tee = OutputTee(copy.append)
    tee.start()
    for step in sys.argv[2:]:
        kind, _, text = step.partition(":")
        if kind == "out":
            os.write(1, (text + "\\n").encode())
        elif kind == "err":
            os.write(2, (text + "\\n").encode())
        elif kind == "say":
            write_in_order(text + "\\n")
        elif kind == "flood":
            line = b"x" * 99 + b"\\n"
            for _ in range(int(text) // 100):
                os.write(1, line)
    tee.stop()
    with open(sys.argv[1], "wb") as out:
        out.write(b"".join(copy))
    """
)


def _run(tmp_path: Path, *steps: str) -> tuple[str, str, str]:
    """The copy, the child's stdout and its stderr (the container's log, per stream)."""
    copy = tmp_path / "copy"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(copy), *steps],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return copy.read_text(), done.stdout.decode(), done.stderr.decode()


def test_a_runner_line_comes_before_the_output_written_after_it(tmp_path: Path) -> None:
    # A flood of stdout at once after the line: both pipes wait when the tee's thread looks,
    # and it reads stdout first; the line does not wait in a pipe, so it stays first.
    for _ in range(5):
        copy, stdout, stderr = _run(tmp_path, "say:the start line", "flood:400000")
        assert copy.startswith("the start line\n")
        assert copy.count("x" * 99 + "\n") == 4000
        assert stderr == "the start line\n"
        assert stdout.count("\n") == 4000


def test_a_runner_line_comes_after_what_either_stream_held_before_it(tmp_path: Path) -> None:
    copy, stdout, stderr = _run(
        tmp_path, "out:printed", "err:warned", "flood:200000", "say:the last line"
    )
    # Which of the two streams' waiting lines came first, two pipes cannot tell; that both
    # came before the line, they can.
    assert copy.endswith("the last line\n")
    assert {"printed", "warned"} <= set(copy.splitlines()[:-1])
    assert stderr == "warned\nthe last line\n"
    assert stdout.startswith("printed\n")


def test_without_a_tee_a_runner_line_goes_to_stderr(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from podtask_runner.output_capture import write_in_order; write_in_order('hi\\n')",
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert done.stderr == b"hi\n" and done.stdout == b""
