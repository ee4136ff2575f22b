"""Starting and stopping the real control plane: a failed start says which component and
shows its log; a stop, or the death of the process that started it, leaves nothing running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from podtask_devcluster.control_plane import ControlPlane, ControlPlaneStartFailed
from podtask_devcluster.control_plane_build import COMPONENTS
from tests.control_plane.control_plane_testing import kubectl
from tests.e2e.conftest import wait_until

# Not unit (tests/tiers.py): starts the control plane's processes.
pytestmark = pytest.mark.component


def processes_using(state_dir: Path) -> list[int]:
    """The control plane's processes for `state_dir`: a component binary whose flags name it."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if Path(argv[0].decode(errors="replace")).name in COMPONENTS and any(
            str(state_dir).encode() in arg for arg in argv[1:]
        ):
            found.append(int(entry))
    return found


def test_a_failed_start_names_the_component_and_its_log(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    broken = ControlPlane(state_dir, component_args={"kube-apiserver": ["--no-such-flag"]})
    with pytest.raises(ControlPlaneStartFailed) as failed:
        broken.start()
    message = str(failed.value)
    assert "kube-apiserver exited" in message
    assert str(state_dir / "logs" / "kube-apiserver.log") in message
    assert "unknown flag: --no-such-flag" in message
    assert processes_using(state_dir) == []  # etcd, started first, was stopped


def start_cli(state_dir: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "podtask_devcluster.control_plane",
            "run",
            "--state-dir",
            str(state_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Kubeconfig:"):
            break
    assert lines and lines[-1] == f"Kubeconfig: {state_dir / 'kubeconfig'}\n", "".join(lines)
    return process


def test_ctrl_c_stops_every_component(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    process = start_cli(state_dir)
    assert len(processes_using(state_dir)) == 4
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 0
    assert processes_using(state_dir) == []


def test_a_killed_parent_leaves_nothing_running(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    process = start_cli(state_dir)
    assert len(processes_using(state_dir)) == 4
    process.kill()
    process.wait(timeout=30)
    wait_until(lambda: processes_using(state_dir) == [], timeout=30)


def test_it_outlives_the_thread_that_started_it(tmp_path: Path) -> None:
    """The components die with the process, not with the thread that called start() (as
    `asyncio.to_thread` or a fixture's helper thread would)."""
    state_dir = tmp_path / "state"
    control_plane = ControlPlane(state_dir)
    starter = threading.Thread(target=control_plane.start)
    starter.start()
    starter.join()
    try:
        listed = kubectl(control_plane.kubeconfig, "get", "namespaces", "-o", "name")
        assert "namespace/default" in listed.stdout
        assert control_plane.running
        assert len(processes_using(state_dir)) == 4
    finally:
        control_plane.stop()
    assert processes_using(state_dir) == []
