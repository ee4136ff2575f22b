"""What every route reaches, and the one way it reaches it: the `services` dependency.

`Services` holds the settings, the cluster, the API keys, the deployments' cluster, the
runs' event feed, the Tasks' catalog and the key that signs the dashboard's sessions;
`create_app` makes it once, and each route asks for it with a `ServicesDep` parameter.
Cluster calls block, so routes make them through `Services.call`, which runs each in a
worker thread and turns cluster failures into `ApiError`s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from podtask._contract.batch_markers import CommittedBatches
from podtask_api.auth import ApiKeyStore
from podtask_api.cluster import (
    ClusterUnavailable,
    KubernetesCluster,
    ObjectRejected,
    ResourceNotInstalled,
)
from podtask_api.deployments import DeploymentCluster
from podtask_api.errors import ApiError
from podtask_api.settings import ApiSettings

if TYPE_CHECKING:
    from podtask_api.run_feed import RunFeed
    from podtask_api.task_catalog import TaskCatalog

T = TypeVar("T")


def cluster_failure(exc: ClusterUnavailable | ResourceNotInstalled | ObjectRejected) -> ApiError:
    """The answer to a cluster failure that every route treats alike."""
    if isinstance(exc, ClusterUnavailable):
        return ApiError(exc.status, "cluster_unavailable", str(exc))
    if isinstance(exc, ResourceNotInstalled):
        return ApiError(503, "cluster_not_ready", str(exc))
    return ApiError(422, "rejected_by_cluster", f"the cluster refused the object: {exc}")


@dataclass(frozen=True)
class Services:
    settings: ApiSettings
    cluster: KubernetesCluster
    api_keys: ApiKeyStore
    deployments: DeploymentCluster
    # The one watch of TaskRuns that feeds every event stream of this process.
    run_feed: RunFeed
    # The Tasks as one watch sees them: what a trigger reads its Task from.
    tasks: TaskCatalog
    # Signs the dashboard's session cookies (`dashboard.sessions`).
    session_key: bytes = field(repr=False)
    # Batches whose runs users may see: known committed (see `batch_visibility`).
    batches: CommittedBatches = field(default_factory=CommittedBatches)

    async def call(self, operation: Callable[..., T], *args: Any) -> T:
        """Run one cluster call in a thread; errors every route treats alike become ApiErrors."""
        try:
            return await run_in_threadpool(operation, *args)
        except (ClusterUnavailable, ResourceNotInstalled, ObjectRejected) as exc:
            raise cluster_failure(exc) from exc

    def attach(self, app: FastAPI) -> None:
        """Make these the services of `app`'s routes."""
        app.state.services = self


async def services(request: Request) -> Services:
    """The dependency that gives a route its services (`async`: a plain `def` dependency
    would cost a hop to a worker thread on every request)."""
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]
