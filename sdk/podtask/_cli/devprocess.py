"""`DevProcess`: `podtask dev` started in the background, for tests and benchmarks.

It runs the real command in a subprocess and reads its banner, so whatever uses
it talks to the stack exactly as a developer would: the API URL, the API key
and the kubeconfig path; and `save_as_an_editor` changes a task module under it as a
developer's editor would.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

_BANNER = {
    "API": "api_url",
    "API key": "api_key",
    "Operator metrics": "operator_metrics_url",
    "Kubeconfig": "kubeconfig",
}


def save_as_an_editor(path: Path, source: str) -> None:
    """Write `source` to `path` as most editors save: a new file renamed over the old one."""
    draft = path.with_name(f".{path.name}.draft")
    draft.write_text(source)
    os.replace(draft, path)


class DevProcess:
    def __init__(
        self,
        modules: Sequence[str],
        state_dir: Path,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float = 90,
        port: int = 0,
        cluster: str = "embedded",
        runtime: str = "processes",
    ) -> None:
        self.port = port
        self.cluster = cluster
        self.runtime = runtime
        self.modules = list(modules)
        self.state_dir = state_dir
        self.cwd = cwd
        self.env = env
        self.start_timeout = start_timeout
        self.api_url = ""
        self.api_key = ""
        self.operator_metrics_url = ""
        self.kubeconfig = ""
        self.output: list[str] = []
        self._process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        """The pid of the `podtask dev` process (the parts are its children)."""
        assert self._process is not None, "not started"
        return self._process.pid

    def part_pid(self, part: str) -> int:
        """The pid of one part's current process: `cluster`, `node-agent`, `api` or
        `operator`."""
        import psutil

        module = {
            "cluster": "podtask_devcluster",
            "api": "podtask_api",
            "node-agent": "podtask_devcluster.node_agent",
        }.get(part, f"podtask_{part}")
        for child in psutil.Process(self.pid).children():
            with contextlib.suppress(psutil.NoSuchProcess):
                if child.status() != psutil.STATUS_ZOMBIE and module in child.cmdline():
                    return int(child.pid)
        raise LookupError(f"no {part} process under podtask dev ({self.pid})")

    def start(self) -> DevProcess:
        args = [
            sys.executable,
            "-m",
            "podtask._cli.cli",
            "dev",
            *self.modules,
            "--state-dir",
            str(self.state_dir),
            "--port",
            str(self.port),
            "--cluster",
            self.cluster,
            "--runtime",
            self.runtime,
        ]
        self._process = subprocess.Popen(
            args,
            cwd=self.cwd,
            env={**os.environ, **(self.env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(lines,), daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=self.start_timeout)
            except queue.Empty:
                self.stop()
                raise TimeoutError("podtask dev did not start:\n" + "".join(self.output)) from None
            if line is None:
                raise RuntimeError("podtask dev exited:\n" + "".join(self.output))
            key, sep, value = line.strip().partition(": ")
            if sep and key in _BANNER:
                setattr(self, _BANNER[key], value)
            if line.startswith("Ready"):
                return self

    def _pump(self, lines: queue.Queue[str | None]) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self.output.append(line)
            lines.put(line)
        lines.put(None)

    def stop(self, timeout: float = 30) -> int:
        """Stop it as Ctrl-C would; the exit code."""
        if self._process is None:
            return 0
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self._process.returncode

    def __enter__(self) -> DevProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
