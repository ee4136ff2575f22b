"""podtask_runner: the process inside every task pod.

It fetches one attempt's payload and context from the API with the attempt's
token, imports the task module, runs the task, checks the output and reports
the outcome back (`--local` runs one attempt the same way without an API or a
cluster, for trying a task out). It needs no Kubernetes credentials and imports
no server code (FastAPI, kubernetes, kopf), because it starts once per attempt.
"""
