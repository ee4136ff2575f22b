"""podtask_runner: the process inside every task pod.

It fetches one attempt's payload and context from the API with the attempt's
token, imports the task module, runs the task with its hooks (`attempt`, which
documents their order and what happens when one raises), checks the output and
reports the outcome back (`--local` runs one attempt the same way without an API
or a cluster, for trying a task out). SIGTERM and `max_duration` interrupt the
task's code (`interruptions`); `author_code` calls the author's functions, plain
or async. It needs no Kubernetes credentials and imports no server code (FastAPI,
kubernetes, kopf), because it starts once per attempt.
"""
