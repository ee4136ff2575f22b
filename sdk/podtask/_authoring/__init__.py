"""What a task author declares and gets (tasks, queues, the run context, trigger options,
run handles), and how declared tasks are found (modules) and listed (the manifest).
Private: `podtask` re-exports the author's part.
"""
