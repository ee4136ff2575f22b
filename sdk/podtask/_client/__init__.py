"""The API client's parts: each operation without I/O, the configuration and the
transports. Private: callers import `podtask.client`.
"""
