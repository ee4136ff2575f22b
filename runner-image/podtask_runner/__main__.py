"""`python -m podtask_runner`: run one attempt in a task pod and exit with its verdict.

`python -m podtask_runner --local MODULE TASK_ID [--payload JSON]` runs one
attempt the same way without an API or a cluster, for trying a task out.

Exit codes tell the operator who failed: 0 the task succeeded, 1 the task
failed (its error was reported), 2 the runner itself could not talk to the API
or was started without its environment (or, locally, with bad arguments), 143
(128 + SIGTERM) the pod was told to stop.

SIGTERM (cancel, eviction, pod deletion) is handled from the start: before the task
runs (fetching the attempt, importing the module) it ends the runner at once; while
the task runs it interrupts it, and the hooks that follow the outcome (on_error,
on_complete, cleanup) still run (see `podtask_runner.attempt`). Then the runner tries
briefly to report the attempt (as failed with `TaskTerminatedError`, unless its outcome
was already decided) and exits 143, whatever the report did.

In a pod, everything the container writes is also sent to the API as it is written
(`podtask_runner.log_shipping`), so that the attempt's log outlives its pod; the run's
metadata, while the task changes it and once more before the report
(`podtask_runner.metadata_shipping`). An attempt the
API says has ended (its run was canceled or timed out meanwhile) has nothing to report:
the runner says so in one plain line.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit

from podtask._contract.wire import (
    ENV_API_CALL_ATTEMPTS,
    ENV_API_URL,
    ENV_ATTEMPT,
    ENV_ATTEMPT_TOKEN,
    ENV_RUN_ID,
    EXIT_OK,
    EXIT_RUNNER_FAILED,
    EXIT_TASK_FAILED,
    EXIT_TERMINATED,
)
from podtask.errors import TaskTerminatedError
from podtask_runner.interruptions import TERMINATED_MESSAGE, Interruptions
from podtask_runner.output_capture import write_in_order

if TYPE_CHECKING:
    import argparse

    from podtask._authoring.tasks import Task
    from podtask_runner.attempt import Outcome
    from podtask_runner.callbacks import AttemptCallbacks

LOCAL_RUN_ID = "local"

# What the operator sets in every task pod (`pods.pod_for_attempt`).
_ENV = (ENV_API_URL, ENV_RUN_ID, ENV_ATTEMPT, ENV_ATTEMPT_TOKEN)


class RunnerEnvironmentError(Exception):
    """The pod was started without the variables the operator sets."""


@dataclass(frozen=True)
class RunnerEnvironment:
    api_url: str
    run_id: str
    attempt: int
    token: str
    # How many times one call to the API is tried; None: CallRetry's default (about a minute).
    call_attempts: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunnerEnvironment:
        missing = [name for name in _ENV if not env.get(name)]
        if missing:
            raise RunnerEnvironmentError(f"missing environment variables: {', '.join(missing)}")
        api_url = env[ENV_API_URL]
        try:
            parts = urlsplit(api_url)
            # `port` raises ValueError for a port that is not a number.
            valid_url = parts.scheme in ("http", "https") and bool(parts.hostname)
            valid_url = valid_url and parts.port != 0
        except ValueError:
            valid_url = False
        if not valid_url:
            raise RunnerEnvironmentError(
                f"{ENV_API_URL} must be the API's http(s) address, got {api_url!r}"
            )
        try:
            attempt = int(env[ENV_ATTEMPT])
        except ValueError:
            raise RunnerEnvironmentError(
                f"{ENV_ATTEMPT} must be a whole number, got {env[ENV_ATTEMPT]!r}"
            ) from None
        call_attempts = None
        if env.get(ENV_API_CALL_ATTEMPTS):
            try:
                call_attempts = max(1, int(env[ENV_API_CALL_ATTEMPTS]))
            except ValueError:
                raise RunnerEnvironmentError(
                    f"{ENV_API_CALL_ATTEMPTS} must be a whole number, got "
                    f"{env[ENV_API_CALL_ATTEMPTS]!r}"
                ) from None
        return cls(
            api_url=api_url,
            run_id=env[ENV_RUN_ID],
            attempt=attempt,
            token=env[ENV_ATTEMPT_TOKEN],
            call_attempts=call_attempts,
        )


def _say(message: str) -> None:
    # One write, the newline with it: a line that stderr gets whole is never cut in a log.
    # In order: after all the process wrote before it, in the stored log too.
    write_in_order(f"[podtask-runner] {message}\n")


def _line_buffered(stream: TextIO) -> None:
    # The pod log should show each print as it happens, not when a buffer fills.
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(line_buffering=True)


def _parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m podtask_runner",
        description="Run one attempt of a task. In a pod (no arguments) the attempt comes from "
        "the API named by PODTASK_API_URL and friends; with --local it runs here, without "
        "an API or a cluster, and the output is printed as JSON on the last line of stdout.",
    )
    parser.add_argument(
        "--local",
        nargs=2,
        metavar=("MODULE", "TASK_ID"),
        help="run TASK_ID from MODULE (a .py path or a dotted name) once, as attempt 1 of run "
        f"{LOCAL_RUN_ID!r}",
    )
    parser.add_argument(
        "--payload", metavar="JSON", help="the payload as JSON (with --local; default: null)"
    )
    return parser


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def main(argv: list[str] | None = None) -> int:
    interruptions = Interruptions()
    with interruptions.installed():
        return _main(argv, interruptions)


def _main(argv: list[str] | None, interruptions: Interruptions) -> int:
    given = sys.argv[1:] if argv is None else argv
    _line_buffered(sys.stdout)
    _line_buffered(sys.stderr)
    # `python -m` puts the working directory on sys.path; the console script does not.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if not given:
        # A pod's runner: no arguments to read, and no argparse to import for them.
        return _in_pod(interruptions)
    parser = _parser()
    args = parser.parse_args(given)
    if args.local is None:
        if args.payload is not None:
            parser.error("--payload goes with --local; in a pod the payload comes from the API")
        return _in_pod(interruptions)
    try:
        # NaN and Infinity are refused here as the API refuses them in a trigger.
        payload = (
            None
            if args.payload is None
            else json.loads(args.payload, parse_constant=_refuse_constant)
        )
    except ValueError as exc:
        parser.error(f"--payload is not valid JSON: {exc}")
    module, task_id = args.local
    return _local(module, task_id, payload, interruptions)


def _attempt(
    label: str,
    module: str,
    task_id: str,
    execute: Callable[[Task], Outcome],
    interruptions: Interruptions,
) -> Outcome:
    """Import the module, find the task, `execute` it; log the start and the verdict."""
    from podtask_runner.attempt import failure_report, find_task

    _say(f"{label} (task {task_id}) starting")
    started = time.monotonic()
    outcome: Outcome
    try:
        # A slow import (a big library) is no reason to ignore a SIGTERM.
        with interruptions.interrupting():
            interruptions.check()
            task = find_task(module, task_id)
            interruptions.check()
    except (Exception, TaskTerminatedError) as exc:
        outcome = failure_report(exc)
    else:
        outcome = execute(task)
    elapsed = time.monotonic() - started
    if outcome.error is not None:
        # The traceback goes to the pod log as any crashing Python process would print it.
        write_in_order(outcome.error.stack or "")
        _say(f"{label} failed after {elapsed:.3f}s: {outcome.error.type}")
    else:
        _say(f"{label} completed in {elapsed:.3f}s")
    return outcome


def _local(module: str, task_id: str, payload: Any, interruptions: Interruptions) -> int:
    from podtask._authoring.context import Context, MachineContext
    from podtask._contract.machines import machine_preset
    from podtask_runner.attempt import execute_attempt

    def execute(task: Task) -> Outcome:
        preset = machine_preset(task.machine)
        ctx = Context(
            run_id=LOCAL_RUN_ID,
            attempt=1,
            task_id=task.id,
            queue=task.queue_name,
            machine=MachineContext(preset.name, preset.cpu, preset.memory_gb),
            started_at=datetime.now(UTC),
        )
        max_duration = task.max_duration_seconds
        return execute_attempt(
            task,
            payload,
            ctx,
            max_duration_seconds=None if max_duration is None else float(max_duration),
            interruptions=interruptions,
        )

    label = f"attempt 1 of run {LOCAL_RUN_ID}"
    outcome = _attempt(label, module, task_id, execute, interruptions)
    if outcome.error is not None:
        # The pod's runner reports the message to the API; here the terminal is the report.
        _say(f"{outcome.error.type}: {outcome.error.message}")
    if interruptions.terminated:
        return EXIT_TERMINATED
    if outcome.error is not None:
        return EXIT_TASK_FAILED
    # Already checked to be JSON by execute_attempt; one line, after anything the task printed.
    print(json.dumps(outcome.output, separators=(",", ":"), ensure_ascii=False))
    return EXIT_OK


def _in_pod(interruptions: Interruptions) -> int:
    try:
        env = RunnerEnvironment.from_env(os.environ)
    except RunnerEnvironmentError as exc:
        _say(f"cannot start: {exc}")
        return EXIT_RUNNER_FAILED

    # Imported here so that a missing environment fails fast and cheaply.
    from podtask_runner.attempt import context_from_wire, execute_attempt, failure_report
    from podtask_runner.callbacks import ApiCallError, AttemptCallbacks, AttemptEnded, CallRetry
    from podtask_runner.log_shipping import AttemptLog
    from podtask_runner.metadata_shipping import MetadataShipper

    label = f"attempt {env.attempt} of run {env.run_id}"
    retry = None if env.call_attempts is None else CallRetry(attempts=env.call_attempts)
    callbacks = AttemptCallbacks(env.api_url, env.run_id, env.attempt, env.token, retry=retry)
    # The log's and the metadata's senders share one client (each send tries briefly).
    shipping_callbacks = AttemptCallbacks(env.api_url, env.run_id, env.attempt, env.token)
    attempt_log = AttemptLog(shipping_callbacks, _say)
    attempt_log.start()
    try:
        try:
            with interruptions.interrupting():
                interruptions.check()
                attempt: dict[str, Any] = callbacks.fetch_attempt()
                interruptions.check()
            task_id = str(attempt["taskId"])
            module = str(attempt["module"])
            ctx = context_from_wire(attempt["context"])
            max_duration = attempt.get("maxDurationSeconds")
        except TaskTerminatedError:
            _say(f"{label} stopped by SIGTERM before it started")
            _report(
                callbacks,
                failure_report(TaskTerminatedError(TERMINATED_MESSAGE)),
                label,
                hurried=True,
            )
            return EXIT_TERMINATED
        except AttemptEnded as exc:
            _say(f"{label} has ended ({exc.why}) before it started; nothing to run")
            return EXIT_TERMINATED if interruptions.terminated else EXIT_RUNNER_FAILED
        except ApiCallError as exc:
            _say(f"could not fetch attempt {env.attempt} of run {env.run_id}: {exc}")
            return EXIT_RUNNER_FAILED
        except (KeyError, TypeError, ValueError) as exc:
            _say(f"the API sent an attempt the runner cannot read: {type(exc).__name__}: {exc}")
            return EXIT_RUNNER_FAILED

        def execute(task: Task) -> Outcome:
            return execute_attempt(
                task,
                attempt.get("payload"),
                ctx,
                max_duration_seconds=None if max_duration is None else float(max_duration),
                interruptions=interruptions,
            )

        metadata_shipping = MetadataShipper(ctx.metadata, shipping_callbacks, _say)
        metadata_shipping.start()
        outcome = _attempt(label, module, task_id, execute, interruptions)
        # The metadata as the task left it, before the report ends the attempt.
        metadata_shipping.close(hurried=interruptions.terminated)
        reported = _report(callbacks, outcome, label, hurried=interruptions.terminated)
        if interruptions.terminated:
            return EXIT_TERMINATED
        if not reported:
            return EXIT_RUNNER_FAILED
        return EXIT_OK if outcome.ok else EXIT_TASK_FAILED
    finally:
        # After the runner's last line: the stored log ends where the pod's does.
        attempt_log.stop(hurried=interruptions.terminated)
        shipping_callbacks.close()
        callbacks.close()


def _report(callbacks: AttemptCallbacks, outcome: Outcome, label: str, *, hurried: bool) -> bool:
    """Send the report; False when it could not reach the API. An attempt that has ended
    meanwhile (its run canceled or timed out) needs none: that is no failure."""
    from podtask_runner.callbacks import ApiCallError, AttemptEnded

    try:
        callbacks.report(outcome, hurried=hurried)
    except AttemptEnded as exc:
        _say(f"{label} has ended ({exc.why}); nothing to report")
    except ApiCallError as exc:
        _say(f"could not report {label}: {exc}")
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
