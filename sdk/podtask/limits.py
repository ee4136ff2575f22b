"""Size limits shared by the API (payloads) and the runner (outputs).

Both end up inside a TaskRun object, and Kubernetes objects must stay well
below etcd's 1.5 MiB request limit.
"""

MAX_PAYLOAD_BYTES = 512 * 1024
MAX_OUTPUT_BYTES = 512 * 1024
