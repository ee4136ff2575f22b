"""Every limit on what a TaskRun holds, in one place: the budget that keeps a TaskRun below
what etcd stores, and the batch size shared by the API and the client.

A TaskRun is one Kubernetes object, and etcd refuses a write over 1.5 MiB (its default
`--max-request-bytes`). Sizes are counted as Kubernetes stores the object: JSON in UTF-8,
with `<`, `>`, `&`, U+2028 and U+2029 escaped as `\\u00XX` (Go's encoding/json), so a part
within its limit here is within it in etcd too. The parts, each bounded where it enters
(trigger, batch item, replay, the runner's report, the operator's attempt records):

| part | limit |
| --- | --- |
| payload (`spec.payload`) | `MAX_PAYLOAD_BYTES` |
| the trigger's metadata (`spec.metadata`) | `MAX_METADATA_BYTES` |
| the metadata the task writes (`status.metadata`) | `MAX_RUN_METADATA_BYTES` |
| output (`status.output`, held once) | `MAX_OUTPUT_BYTES` |
| the run's error and the report's error | `MAX_ERROR_BYTES` each |
| every attempt's error together | `MAX_ATTEMPT_ERRORS_BYTES`, an equal share each |
| a condition's message | `MAX_CONDITION_MESSAGE_BYTES` |
| tags, keys, the task snapshot, attempts' other fields | bounded by their own rules |

Their sum stays under `MAX_TASK_RUN_BYTES`; a test builds the largest TaskRun these limits
allow and measures it.
"""

KIB = 1024
MIB = 1024 * KIB

# What etcd accepts in one write, and the part of it a TaskRun may use: the rest is room
# for what the apiserver adds (managedFields, resourceVersion, timestamps; a few KiB, as the
# largest TaskRun shows on a real apiserver: tests/operator/test_run_budget.py).
ETCD_MAX_REQUEST_BYTES = 3 * MIB // 2
MAX_TASK_RUN_BYTES = ETCD_MAX_REQUEST_BYTES - 64 * KIB

MAX_PAYLOAD_BYTES = 512 * KIB
MAX_OUTPUT_BYTES = 512 * KIB
# The metadata a trigger gives (the run's initial metadata), and the document a task writes
# while it runs (Trigger.dev's limit, 256 KiB), which replaces it in the run's view.
MAX_METADATA_BYTES = 64 * KIB
MAX_RUN_METADATA_BYTES = 256 * KIB
# A task's payload JSON schema (`Task` spec, not copied into its runs): what pydantic makes of
# a payload model, a few KiB for most; the dashboard's Test page validates against it.
MAX_PAYLOAD_SCHEMA_BYTES = 64 * KIB

# One error as stored: its type, the head of its message and the tail of its traceback
# (where the cause is). The run's `status.error` and the report's error are one each.
MAX_ERROR_BYTES = 16 * KIB
MAX_ERROR_MESSAGE_BYTES = 4 * KIB
MAX_ERROR_TYPE_CHARS = 256
# Every attempt's error in `status.attempts` together: each attempt gets an equal share,
# by the run's maxAttempts (`attempt_error_bytes`), so a run that retries 100 times keeps
# a short error per attempt and the latest in full in `status.error`.
MAX_ATTEMPT_ERRORS_BYTES = 64 * KIB
MIN_ATTEMPT_ERROR_BYTES = 512
MAX_CONDITION_MESSAGE_BYTES = 2 * KIB
# retry.maxAttempts, which bounds the attempts list (`status.attempts` holds one record per
# attempt, system retries included, so at most this many).
MAX_ATTEMPTS = 100

# How deep a payload, a metadata object or an output may nest objects and arrays. JSON
# parsers and serializers recurse (pydantic's stops at 255 levels, Python's json near
# 1,000); 64 is deeper than any document meant for people or programs.
MAX_JSON_DEPTH = 64
# Integers a TaskRun can hold exactly: Kubernetes reads JSON numbers as int64 or float64.
MIN_JSON_INT = -(2**63)
MAX_JSON_INT = 2**63 - 1

# Items in one batch trigger, as in Trigger.dev.
MAX_BATCH_ITEMS = 1000

# What a TaskRun's spec may hold besides its payload and metadata; the API enforces these at
# trigger time and the CRDs declare them (`podtask._contract.crds`), so kubectl is held to them too.
# A task id is a DNS label (it names the Task object and pod labels); a queue name a DNS
# subdomain (it names the TaskQueue object) that is also a label value, at most 63
# characters: the operator counts a queue's pods by their label and applies its TaskQueue by
# name, so the two must be the same text.
MAX_TASK_ID_LENGTH = 63
MAX_QUEUE_NAME_LENGTH = 63
MAX_TAGS = 10
MAX_TAG_LENGTH = 128
MAX_CONCURRENCY_KEY_LENGTH = 256
MAX_IDEMPOTENCY_KEY_LENGTH = 1024
# Priorities: plain integers beyond any use, within what the cluster stores.
MAX_PRIORITY = 2**31 - 1
# A queue's concurrency limit: far above any cluster's pod capacity.
MAX_CONCURRENCY_LIMIT = 100_000
# An object name (a pod's, in an attempt record): a DNS subdomain.
MAX_OBJECT_NAME_LENGTH = 253
# A waiting run's `status.wait`: the first runs it waits for, by name, and the words of it.
MAX_WAIT_RUNS_SHOWN = 10
MAX_WAITING_FOR_CHARS = 512
# A schedule's texts (`TaskSchedule` spec): Trigger.dev's limits for an external id and a
# deduplication key; a cron expression or a zone name is far shorter than its cap.
MAX_SCHEDULE_EXTERNAL_ID_LENGTH = 256
MAX_SCHEDULE_DEDUPLICATION_KEY_LENGTH = 256
MAX_CRON_LENGTH = 256
MAX_TIMEZONE_LENGTH = 64
# What Kubernetes allows in a condition's type and reason (metav1.Condition).
MAX_CONDITION_TYPE_LENGTH = 316
MAX_CONDITION_REASON_LENGTH = 1024


def attempt_error_bytes(max_attempts: int) -> int:
    """The most one attempt's error may take in `status.attempts`, for a run of `max_attempts`."""
    share = MAX_ATTEMPT_ERRORS_BYTES // max(1, min(max_attempts, MAX_ATTEMPTS))
    return max(MIN_ATTEMPT_ERROR_BYTES, min(MAX_ERROR_BYTES, share))
