"""The wire vocabulary: the names the SDK, the operator, the API, the runner and the dev
cluster must spell alike, each written once.

- the resources: API group, version, kinds and plurals (`crds` declares them);
- the labels podtask puts on what it creates (attempt pods and their token Secrets, keys);
- a task pod's environment: set by the operator (`pods.pod_for_attempt`), read by the runner,
  and by the client inside a task (the API's address, the attempt's token);
- the runner's calls to the API, and the exit codes the operator reads from its container;
- the error types (`RunError.type`) the runner reports and the operator judges.

What one component alone spells (a label only the API sets, the operator's own reasons for a
lost pod) stays with that component. A component's settings are read from `PODTASK_*` by
their field names (pydantic-settings, `ENV_PREFIX`), not listed here.
"""

from __future__ import annotations

from podtask.errors import (
    AbortTaskRunError,
    MaxDurationExceededError,
    PayloadValidationError,
    TaskModuleImportError,
    TaskTerminatedError,
)

# --- the resources ----------------------------------------------------------------------
GROUP = "podtask.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
TASK_KIND, TASKS = "Task", "tasks"
TASK_QUEUE_KIND, TASK_QUEUES = "TaskQueue", "taskqueues"
TASK_RUN_KIND, TASK_RUNS = "TaskRun", "taskruns"
# A task's schedule: declared with `@task(schedule=...)`, or made over the API.
TASK_SCHEDULE_KIND, TASK_SCHEDULES = "TaskSchedule", "taskschedules"

# --- labels -----------------------------------------------------------------------------
# On every attempt pod; the operator selects on them, the API finds a run's pods by them.
LABEL_TASK = f"{GROUP}/task"
LABEL_QUEUE = f"{GROUP}/queue"
LABEL_CONCURRENCY_KEY = f"{GROUP}/concurrency-key"
LABEL_RUN = f"{GROUP}/run"
LABEL_ATTEMPT = f"{GROUP}/attempt"
LABEL_MACHINE = f"{GROUP}/machine"
# On a test run (`spec.isTest`): lists select test runs, or the others, by it.
LABEL_TEST = f"{GROUP}/test"
TEST_LABEL_VALUE = "true"
# On a run triggered by a task (`spec.parentRunId`): its parent's id, so that the parent's
# children are listed by label (`GET /api/v1/runs?parentRunId=`), not by reading every run.
LABEL_PARENT_RUN = f"{GROUP}/parent-run"
# On a run a schedule triggered: the schedule's name (when it is a valid label value), so
# that a schedule's runs are listed by label (`GET /api/v1/runs?scheduleId=`). A
# TaskSchedule itself carries LABEL_TASK: schedules are listed by task.
LABEL_SCHEDULE = f"{GROUP}/schedule"
# Kubernetes' recommended label, on every object podtask creates besides its own resources.
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "podtask"

# --- a task pod's environment -----------------------------------------------------------
# Spelled out whole, so that a search for one finds it; each starts with ENV_PREFIX.
ENV_PREFIX = "PODTASK_"
ENV_API_URL = "PODTASK_API_URL"
ENV_RUN_ID = "PODTASK_RUN_ID"
ENV_ATTEMPT = "PODTASK_ATTEMPT"
# Filled by the kubelet from the attempt's token Secret: the pod's spec never holds it.
ENV_ATTEMPT_TOKEN = "PODTASK_ATTEMPT_TOKEN"
# How many times the runner tries one call to the API (tests set it; unset: about a minute).
ENV_API_CALL_ATTEMPTS = "PODTASK_API_CALL_ATTEMPTS"
# Outside a task pod, the client's credential.
ENV_API_KEY = "PODTASK_API_KEY"

# --- the runner and the API --------------------------------------------------------------
# The runner fetches its attempt here (GET), reports it at `.../complete` (POST), sends its
# output at `.../log` (POST, `podtask._contract.attempt_logs`) and its run's metadata at
# `.../metadata` (PUT, `podtask._contract.run_metadata`), with the attempt token as its
# bearer credential.
RUNNER_ATTEMPT_PATH = "/api/v1/runner/runs/{run_id}/attempts/{attempt}"
RUNNER_METADATA_PATH = "/metadata"
# The API's error code when the operator has not yet recorded the attempt the pod runs: the
# runner tries again.
ATTEMPT_NOT_STARTED = "attempt_not_started"
# The API's error code (a 401) when the attempt has ended (the run finished, was canceled,
# moved on to another attempt): the runner has nothing more to do and says so plainly.
ATTEMPT_ENDED = "attempt_ended"

# --- podtask dev ---------------------------------------------------------------------------
# The API's health endpoint echoes the instance id `podtask dev` started it with, so that dev
# can tell its own API from another server answering on the port.
INSTANCE_HEADER = "Podtask-Instance"

# --- the runner's exit codes -------------------------------------------------------------
EXIT_OK = 0
# The task failed; its error was reported.
EXIT_TASK_FAILED = 1
# The runner could not talk to the API, or was started without its environment.
EXIT_RUNNER_FAILED = 2
# 128 + SIGTERM: the pod was told to stop (deleted, evicted, cancelled).
EXIT_TERMINATED = 128 + 15
# 128 + SIGKILL: killed from outside, or, with the container reason `OOMKilled`, by the kernel.
EXIT_KILLED = 128 + 9

# --- error types the runner reports ------------------------------------------------------
# The runner reports an exception by its class name.
TERMINATED_ERROR = TaskTerminatedError.__name__
TIMED_OUT_ERROR = MaxDurationExceededError.__name__
# The runner's own: the module imported, but declares no task with the attempt's id.
TASK_NOT_FOUND_ERROR = "TaskNotFoundError"
# The runner's own: the task returned something that is not JSON (a set, an object, NaN...),
# or JSON over the output limit.
OUTPUT_NOT_JSON_ERROR = "OutputNotSerializableError"
OUTPUT_TOO_LARGE_ERROR = "OutputTooLargeError"
# Errors after which another attempt cannot do better: the same code, payload and image fail
# the same way. The operator ends the run at once (Failed), whatever retries are left.
NON_RETRYABLE_ERRORS = frozenset(
    {
        AbortTaskRunError.__name__,
        TaskModuleImportError.__name__,
        TASK_NOT_FOUND_ERROR,
        PayloadValidationError.__name__,
        OUTPUT_NOT_JSON_ERROR,
        OUTPUT_TOO_LARGE_ERROR,
    }
)
