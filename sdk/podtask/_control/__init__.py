"""What only the control plane uses: API keys, attempt tokens and the registration of
a manifest's objects. Private: task authors import `podtask`.
"""
