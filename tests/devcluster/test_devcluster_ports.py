"""Free ports: drawn from this process's slice of the range, never handed out twice."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from podtask_devcluster import ports

pytestmark = pytest.mark.component  # binds sockets to find free ports


def test_the_slices_of_a_range_do_not_overlap_and_stay_in_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ports.RANGE_VARIABLE, "10000-19999")
    slices = [ports.slice_of_range(i, 4) for i in range(4)]
    assert slices == ["10000-12499", "12500-14999", "15000-17499", "17500-19999"]


def test_ports_come_from_the_given_slice_and_none_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ports.RANGE_VARIABLE, "20000-20199")
    monkeypatch.setattr(ports, "_handed_out", set())
    handed = [port for _ in range(40) for port in ports.free_ports(2)]
    assert len(set(handed)) == len(handed) == 80
    assert all(20000 <= port <= 20199 for port in handed)


def test_a_port_in_use_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_handed_out", set())
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        port = taken.getsockname()[1]
        monkeypatch.setenv(ports.RANGE_VARIABLE, f"{port}-{port}")
        with pytest.raises(OSError, match=f"no 1 free loopback ports between {port} and {port}"):
            ports.free_ports(1)


def test_a_port_another_live_process_drew_is_not_drawn_again_until_it_exits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A test worker and the `podtask dev` it starts share a slice: the port one drew and
    binds later must not be drawn by the other meanwhile."""
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port = probe.getsockname()[1]
    only = f"{port}-{port}"
    drawer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from podtask_devcluster import ports;"
            " print(ports.free_port(), flush=True); sys.stdin.read()",
        ],
        env={**os.environ, ports.RANGE_VARIABLE: only},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert drawer.stdout is not None and drawer.stdin is not None
    try:
        assert drawer.stdout.readline().strip() == str(port)
        monkeypatch.setattr(ports, "_handed_out", set())
        monkeypatch.setenv(ports.RANGE_VARIABLE, only)
        with pytest.raises(OSError, match=f"no 1 free loopback ports between {port} and {port}"):
            ports.free_ports(1)
    finally:
        drawer.stdin.close()
        drawer.wait(timeout=30)
    assert ports.free_ports(1) == [port]
