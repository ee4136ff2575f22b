"""Size limits shared by the API (payloads) and the runner (outputs), and by the API and the
client (batch size).

Payloads and outputs end up inside a TaskRun object, and Kubernetes objects must stay well
below etcd's 1.5 MiB request limit.
"""

MAX_PAYLOAD_BYTES = 512 * 1024
MAX_OUTPUT_BYTES = 512 * 1024

# Items in one batch trigger, as in Trigger.dev.
MAX_BATCH_ITEMS = 1000
