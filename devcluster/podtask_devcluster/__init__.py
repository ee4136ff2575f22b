"""An embedded, Kubernetes-API-compatible dev cluster: API server, storage, scheduler, garbage
collector and the node agent (`node_agent`), which also serves real control planes.

For development and tests only: it binds to loopback, has no authentication, and runs pod
commands as local processes instead of containers.
"""

from podtask_devcluster.cluster import EmbeddedCluster
from podtask_devcluster.state_lock import StateDirInUse

__all__ = ["EmbeddedCluster", "StateDirInUse"]
