"""`podtask dev` supervises its parts: a part that dies is restarted with a backoff and says
so, while the pods keep running, so executing runs finish on their first attempt; what
answers on its ports is its own; nothing a task starts outlives its run or `podtask dev`;
and its state directory is owner-only."""

from __future__ import annotations

import os
import signal
import stat
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from podtask._cli.devprocess import DevProcess
from podtask_devcluster.ports import free_port
from tests.e2e.conftest import ROOT, TASK_MODULES, Stack, wait_until

MODULE = str(TASK_MODULES / "supervised.py")


def _start(state_dir: Path, **options: Any) -> DevProcess:
    return DevProcess([MODULE], state_dir, cwd=ROOT, **options).start()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    dev = _start(tmp_path_factory.mktemp("supervised") / ".podtask")
    try:
        yield Stack(dev)
    finally:
        dev.stop()


def _output(stack: Stack) -> str:
    return "".join(stack.dev.output)


def _executing(stack: Stack, ids: list[str]) -> bool:
    return all(stack.run(i)["status"] == "Executing" for i in ids)


def _current_pid(stack: Stack, part: str) -> int | None:
    try:
        return stack.dev.part_pid(part)
    except LookupError:
        return None


def _kill_and_finish(
    stack: Stack, part: str, tmp_path: Path, seconds: float, kills: int = 1
) -> None:
    """Runs executing while `part` is SIGKILLed (`kills` times, each time as soon as it is
    back): it is restarted with a growing backoff, and the runs finish on attempt 1."""
    ledger = tmp_path / "ledger"
    ids = [
        stack.trigger("ledgered", {"ledger": str(ledger), "seconds": seconds, "i": i})
        for i in range(3)
    ]
    wait_until(lambda: _executing(stack, ids), timeout=90)
    label = "API" if part == "api" else part
    delays = [0.5, 1, 2, 4, 8][:kills]
    restarted = f"restarted the {label} (pid"
    for kill, delay in enumerate(delays, start=1):
        old_pid = stack.dev.part_pid(part)
        os.kill(old_pid, signal.SIGKILL)
        notice = f"podtask dev: the {label} was killed by SIGKILL; restarting it in {delay:g} s"
        wait_until(lambda notice=notice: notice in _output(stack), timeout=60)
        wait_until(lambda kill=kill: _output(stack).count(restarted) >= kill, timeout=60)
        assert _current_pid(stack, part) not in (None, old_pid)
    wait_until(lambda: _answers(stack), timeout=60)
    runs = {i: stack.wait_for(i, timeout=120) for i in ids}
    assert {i: (r["status"], r["attempt"]) for i, r in runs.items()} == dict.fromkeys(
        ids, ("Completed", 1)
    )
    executions = Counter(line.split()[0] for line in ledger.read_text().splitlines())
    assert executions == dict.fromkeys(ids, 1)


def _answers(stack: Stack) -> bool:
    try:
        return stack.http.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def test_a_killed_operator_is_restarted_and_runs_finish_on_their_first_attempt(
    stack: Stack, tmp_path: Path
) -> None:
    _kill_and_finish(stack, "operator", tmp_path, seconds=5)


def test_a_killed_api_is_restarted_and_runners_report_to_it(stack: Stack, tmp_path: Path) -> None:
    # The runs end while the API is down for several seconds: their reports wait for it.
    _kill_and_finish(stack, "api", tmp_path, seconds=1, kills=4)


def test_a_killed_cluster_is_restarted_with_its_state(stack: Stack, tmp_path: Path) -> None:
    before = stack.trigger("ledgered", {"ledger": str(tmp_path / "ledger")})
    assert stack.wait_for(before)["status"] == "Completed"
    os.kill(stack.dev.part_pid("cluster"), signal.SIGKILL)
    notice = "podtask dev: the cluster was killed by SIGKILL; restarting it in"
    wait_until(lambda: notice in _output(stack), timeout=60)
    wait_until(lambda: "restarted the cluster (pid" in _output(stack), timeout=60)

    def triggered() -> str | None:
        try:
            return stack.trigger("ledgered", {"ledger": str(tmp_path / "ledger")})
        except (AssertionError, httpx.TransportError):
            return None  # the cluster is still starting

    after = wait_until(triggered, timeout=60)
    assert stack.wait_for(after, timeout=120)["status"] == "Completed"
    assert stack.run(before)["status"] == "Completed"  # its state came back with it


def _gone(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        return process.status() == psutil.STATUS_ZOMBIE and process.ppid() == 1
    except psutil.NoSuchProcess:
        return True


def _daemon_pid(pidfile: Path) -> int:
    wait_until(pidfile.exists, timeout=90)
    pid = int(pidfile.read_text())
    assert not _gone(pid)
    return pid


def test_a_tasks_setsid_daemon_ends_with_its_run(stack: Stack, tmp_path: Path) -> None:
    pidfile = tmp_path / "daemon.pid"
    run_id = stack.trigger("daemonizing", {"pidfile": str(pidfile), "hold": 1})
    pid = _daemon_pid(pidfile)
    assert stack.wait_for(run_id, timeout=90)["status"] == "Completed"
    wait_until(lambda: _gone(pid))


def test_the_state_directory_is_owner_only(stack: Stack) -> None:
    state = Path(stack.dev.kubeconfig).parent
    modes = {
        str(path.relative_to(state)): stat.S_IMODE(path.lstat().st_mode)
        for path in [state, *state.rglob("*")]
        if not path.is_symlink()
    }
    assert {"cluster.db", "dev-secrets.json", "kubeconfig", "logs/api.log"} <= set(modes)
    expected = {name: 0o700 if (state / name).is_dir() else 0o600 for name in modes}
    assert {k: oct(v) for k, v in modes.items()} == {k: oct(v) for k, v in expected.items()}


def test_files_left_readable_are_made_owner_only_at_start(tmp_path: Path) -> None:
    state = tmp_path / ".podtask"
    (state / "logs").mkdir(parents=True)
    for name in ("dev-secrets.json", "cluster.db", "logs/api.log"):
        (state / name).write_text("" if name != "dev-secrets.json" else "{}")
    os.chmod(state, 0o755)
    os.chmod(state / "logs", 0o755)
    for name in ("cluster.db", "logs/api.log"):
        os.chmod(state / name, 0o644)
    (state / "dev-secrets.json").unlink()  # a fresh one is made
    dev = _start(state)
    try:
        for path in (state / "cluster.db", state / "logs" / "api.log"):
            assert oct(stat.S_IMODE(path.stat().st_mode)) == oct(0o600)
        assert oct(stat.S_IMODE(state.stat().st_mode)) == oct(0o700)
        assert oct(stat.S_IMODE((state / "logs").stat().st_mode)) == oct(0o700)
    finally:
        dev.stop()


def test_a_setsid_daemon_ends_when_podtask_dev_is_killed(tmp_path: Path) -> None:
    dev = _start(tmp_path / ".podtask")
    try:
        parts = [dev.part_pid(p) for p in ("cluster", "api", "operator")]
        pidfile = tmp_path / "daemon.pid"
        Stack(dev).trigger("daemonizing", {"pidfile": str(pidfile), "hold": 300})
        pid = _daemon_pid(pidfile)
        os.kill(dev.pid, signal.SIGKILL)
        wait_until(lambda: _gone(pid), timeout=60)
        wait_until(lambda: all(_gone(p) for p in parts), timeout=60)
    finally:
        dev.stop()


class _Impostor(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_port_taken_by_another_server_is_refused_by_name(tmp_path: Path) -> None:
    impostor = ThreadingHTTPServer(("127.0.0.1", 0), _Impostor)
    port = impostor.server_address[1]
    threading.Thread(target=impostor.serve_forever, daemon=True).start()
    try:
        with pytest.raises(RuntimeError) as failed:
            _start(tmp_path / ".podtask", port=port)
    finally:
        impostor.shutdown()
        impostor.server_close()
    message = str(failed.value)
    assert f"port {port} is taken by another program" in message
    assert "`podtask dev --port N` (`make dev PORT=N`)" in message
    assert "Ready" not in message and "API key" not in message


def test_only_its_own_api_counts_as_ready(tmp_path: Path) -> None:
    """A server that answers the health check on the port without being ours is not ready,
    even when the port looked free a moment before (another program took it in between)."""
    port = free_port()
    impostor_started = threading.Event()
    impostor: list[ThreadingHTTPServer] = []

    def take_port_later() -> None:
        # Only once `podtask dev` checked the port: when its cluster's log appears.
        wait_until(lambda: (tmp_path / ".podtask" / "logs" / "cluster.log").exists(), 60, 0.01)
        server = ThreadingHTTPServer(("127.0.0.1", port), _Impostor)
        impostor.append(server)
        impostor_started.set()
        server.serve_forever()

    threading.Thread(target=take_port_later, daemon=True).start()
    try:
        with pytest.raises(RuntimeError) as failed:
            _start(tmp_path / ".podtask", port=port)
    finally:
        impostor_started.wait(60)
        for server in impostor:
            server.shutdown()
            server.server_close()
    assert f"port {port} is taken by another program" in str(failed.value)


def test_a_second_podtask_dev_on_the_same_port_says_so_and_how_to_choose_another(
    stack: Stack, tmp_path: Path
) -> None:
    """`make dev` in a second terminal: its port is the first one's, which it names."""
    port = int(stack.dev.api_url.rsplit(":", 1)[1])
    with pytest.raises(RuntimeError) as failed:
        _start(tmp_path / ".podtask", port=port)
    message = str(failed.value)
    assert f"port {port} is taken by another `podtask dev` (its API answers there)" in message
    assert "choose another port with `podtask dev --port N` (`make dev PORT=N`)" in message
    assert "exited with code" not in message and "Ready" not in message


def test_ready_is_said_once_the_operator_serves(tmp_path: Path) -> None:
    """`Ready.` means a run triggered now is seen and started: the operator has rebuilt its
    queues and starts its watches, not merely been spawned."""
    dev = _start(tmp_path / ".podtask")
    try:
        assert dev.operator_metrics_url.endswith("/metrics")
        readyz = dev.operator_metrics_url.removesuffix("/metrics") + "/readyz"
        # At once, without waiting: podtask dev said Ready only after this answered 200.
        answer = httpx.get(readyz, timeout=5)
        assert (answer.status_code, answer.json()) == (200, {"ready": True, "reason": "serving"})
        assert "podtask dev: the operator" not in "".join(dev.output)
    finally:
        dev.stop()
