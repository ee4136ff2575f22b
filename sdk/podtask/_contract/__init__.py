"""The contract the components share: the resources' wire models (CRDs), the trigger
request, the wire vocabulary (environment, exit codes, error names), limits, machines
and retry rules. Private: task authors import `podtask`.
"""
