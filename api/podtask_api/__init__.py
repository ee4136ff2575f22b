"""podtask_api: the FastAPI service in front of the cluster.

It triggers runs (creating `TaskRun` objects from the `Task` they name), shows
runs, and serves the runner's callbacks: the attempt's payload and context, and
the attempt's report. It never decides a run's phase; the operator does.
"""
