"""`EmbeddedCluster`: the API server, its storage, the scheduler, the garbage collector and
the node agent, running on their own event loop in a background thread; plus the kubeconfig
that points kubectl, kopf and the kubernetes client at it.

The node is THE node agent (`node_agent.NodeAgent`, the one `make dev CLUSTER=real` runs on a
real control plane), on the cluster's event loop, talking to this server over HTTP like any
client: one process, one state lock and one lifetime, so a cluster killed with SIGKILL takes its
node and containers with it and its next start finds
the pods that were running lost. Its log endpoint is reached the way kube-apiserver reaches a
kubelet: HTTPS with certificates of a small CA kept in `<state dir>/pki` (owner-only files)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from podtask_devcluster.control_plane_pki import ClusterPki
from podtask_devcluster.discovery import ResourceCatalog
from podtask_devcluster.garbage import GarbageCollector
from podtask_devcluster.http_server import HttpServer
from podtask_devcluster.kubeapi import Connection
from podtask_devcluster.kubeletproxy import KubeletCredentials, KubeletProxy
from podtask_devcluster.local_cluster import LocalCluster
from podtask_devcluster.node_agent import NodeAgent
from podtask_devcluster.private_files import private_directory, write_private_text
from podtask_devcluster.registry import Registry
from podtask_devcluster.scheduler import Scheduler
from podtask_devcluster.server import VERBS, ApiServer
from podtask_devcluster.state_lock import DEFAULT_WAIT_SECONDS, StateLock
from podtask_devcluster.store import JsonObject, ObjectStore, storage_key

T = TypeVar("T")
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0
CONTEXT_NAME = "podtask-dev"
NODE_NAME = "podtask-dev"


def kubeconfig_text(url: str, namespace: str = "default") -> str:
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        f"- name: {CONTEXT_NAME}\n"
        "  cluster:\n"
        f"    server: {url}\n"
        "contexts:\n"
        f"- name: {CONTEXT_NAME}\n"
        "  context:\n"
        f"    cluster: {CONTEXT_NAME}\n"
        f"    user: {CONTEXT_NAME}\n"
        f"    namespace: {namespace}\n"
        f"current-context: {CONTEXT_NAME}\n"
        "users:\n"
        f"- name: {CONTEXT_NAME}\n"
        "  user: {}\n"
        "preferences: {}\n"
    )


class EmbeddedCluster(LocalCluster):
    """A Kubernetes-API-compatible dev cluster persisted under `state_dir`.

    `start()` returns once the server accepts connections; `stop()` (or leaving the `with`
    block) ends watches, kills pod processes and closes the database. Objects and the
    resourceVersion counter survive a stop/start with the same `state_dir`. One cluster at a
    time uses a `state_dir` (`StateLock`): `start()` waits up to `state_lock_timeout` seconds
    for another that is stopping, then raises `StateDirInUse`.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        workdir: Path | None = None,
        instance: str = "",
        state_lock_timeout: float = DEFAULT_WAIT_SECONDS,
        node: bool = True,
        runtime: str | None = None,
        simulated_seconds: float | None = None,
    ) -> None:
        self.state_dir = Path(state_dir)
        self._state_lock = StateLock(self.state_dir)
        self._state_lock_timeout = state_lock_timeout
        self.instance = instance
        self.host = host
        self.port = port
        self.workdir = Path(workdir) if workdir is not None else Path.cwd()
        self.database_path = self.state_dir / "cluster.db"
        self.kubeconfig_path = self.state_dir / "kubeconfig"
        self.node_dir = self.state_dir / "node"
        self.log_dir = self.node_dir / "logs"
        self.pki = ClusterPki(self.state_dir / "pki")
        # Without its node (tests of scheduling), pods stay Pending as on a cluster with none.
        self.node = node
        # How its node runs containers (`runtime`): None is PODTASK_NODE_RUNTIME's choice.
        self.runtime = runtime
        self.simulated_seconds = simulated_seconds
        self._observers: list[Callable[[JsonObject], None]] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stop_requested: asyncio.Event | None = None
        self._server: ApiServer | None = None
        self._registry: Registry | None = None
        self._bound_port: int | None = None
        self._last_counts: dict[str, int] = {}

    # ------------------------------------------------------------ public API

    @property
    def url(self) -> str:
        if self._bound_port is None:
            raise RuntimeError("the cluster is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._bound_port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> EmbeddedCluster:
        if self.running:
            return self
        private_directory(self.state_dir)
        self._state_lock.acquire(self._state_lock_timeout)
        try:
            private_directory(self.log_dir)
            self._start_thread()
        except BaseException:
            if not self.running:
                self._state_lock.release()
            raise
        return self

    def _start_thread(self) -> None:
        # proto must say TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose
        # proto is IPPROTO_TCP, and without it every response waits ~40 ms for a delayed ACK.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.listen(512)
        sock.setblocking(False)
        self._bound_port = sock.getsockname()[1]
        write_private_text(self.kubeconfig_path, kubeconfig_text(self.url))
        self._ready.clear()
        self._startup_error = None
        self._thread = threading.Thread(
            target=self._thread_main, args=(sock,), name="podtask-devcluster", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_SECONDS):
            raise RuntimeError("the dev cluster did not start in time")
        if self._startup_error is not None:
            self._thread.join(5)
            self._thread = None
            raise RuntimeError("the dev cluster failed to start") from self._startup_error

    def stop(self) -> None:
        thread, loop, stop = self._thread, self._loop, self._stop_requested
        if thread is None:
            return
        if loop is not None and stop is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        thread.join(STOP_TIMEOUT_SECONDS)
        self._thread = None
        if not thread.is_alive():
            self._state_lock.release()  # the database is closed

    def request_counts(self) -> dict[str, int]:
        """HTTP requests of clients served since start, by Kubernetes verb (create, update,
        patch, delete, deletecollection, get, list, watch; discovery and health checks count
        as `nonresource`). The cluster's own node is not a client: its requests (Lease
        renewals, pod status, Events) are not counted here (`/metrics` counts them)."""
        counts = {verb: 0 for verb in VERBS}
        server = self._server
        source = dict(server.client_counts) if server is not None else self._last_counts
        counts.update(source)
        return counts

    def add_create_observer(self, callback: Callable[[JsonObject], None]) -> None:
        """Call `callback(obj)` for every object the API creates, synchronously, on the server's
        thread, after it is stored and before the client gets its answer. The callback may read
        the store (`objects(...)`) to see the cluster exactly as of that creation; it must not
        block and must not change the object it is given."""
        self._observers.append(callback)

    def remove_create_observer(self, callback: Callable[[JsonObject], None]) -> None:
        with contextlib.suppress(ValueError):
            self._observers.remove(callback)

    def objects(
        self, plural: str, *, group: str = "", namespace: str | None = None
    ) -> list[JsonObject]:
        """Copies of the stored objects of one resource (all namespaces when None), read
        directly from the store; safe from any thread, and from a create observer."""

        def read() -> list[JsonObject]:
            assert self._registry is not None
            return copy.deepcopy(
                self._registry.store.objects_of(storage_key(group, plural), namespace)
            )

        return self.call(read)

    def call(self, function: Callable[[], T]) -> T:
        """Run `function` on the cluster's loop thread (directly if already there)."""
        loop = self._loop
        if loop is None or not self.running:
            raise RuntimeError("the cluster is not running")
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is loop:
                return function()
        if threading.current_thread() is self._thread:
            return function()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as error:
                future.set_exception(error)

        loop.call_soon_threadsafe(run)
        return future.result(STOP_TIMEOUT_SECONDS)

    # ------------------------------------------------------------ the loop thread

    def _thread_main(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(sock))
        except BaseException as error:
            if not self._ready.is_set():
                self._startup_error = error
                self._ready.set()
            else:
                raise
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None
            sock.close()

    async def _serve(self, sock: socket.socket) -> None:
        self._stop_requested = asyncio.Event()
        stopping = asyncio.Event()
        self.pki.create_ca()
        kubelet_client = self.pki.client(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)
        )
        store = ObjectStore(self.database_path)
        registry = Registry(store, ResourceCatalog())
        registry.create_observers = self._observers
        registry.bootstrap()
        scheduler = Scheduler(registry)
        collector = GarbageCollector(registry)
        scheduler.start()
        collector.start()
        kubelets = KubeletProxy(
            KubeletCredentials(self.pki.ca.cert, kubelet_client.cert, kubelet_client.key)
        )
        server = ApiServer(registry, stopping, kubelets)
        server.server_address = f"{self.host}:{self._bound_port}"
        server.instance = self.instance
        self._registry = registry
        self._server = server
        http = HttpServer(
            "API server", server.app, sock, timeout_graceful_shutdown=3, timeout_keep_alive=30
        )
        agent: NodeAgent | None = None
        try:
            await http.start()
            if self.node:
                serving_pair = self.pki.node_serving(NODE_NAME)
                agent = NodeAgent(
                    Connection(self.url),
                    self.node_dir,
                    serving_pair.cert,
                    serving_pair.key,
                    node_name=NODE_NAME,
                    client_ca_file=self.pki.ca.cert,
                    workdir=self.workdir,
                    runtime=self.runtime,
                    simulated_seconds=self.simulated_seconds,
                )
                await asyncio.wait_for(agent.start(), START_TIMEOUT_SECONDS)
                await asyncio.wait_for(agent.synced.wait(), START_TIMEOUT_SECONDS)
            self._ready.set()
            await self._stop_requested.wait()
        finally:
            # The apiserver's connections to the kubelet first: the agent's log server waits
            # for open ones when it stops.
            await kubelets.close()
            if agent is not None:
                # Then the node: its containers are stopped and their statuses left as they
                # are, for the next start to find them lost.
                await agent.stop()
            stopping.set()
            store.close_watchers()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(http.stop(), STOP_TIMEOUT_SECONDS)
            await collector.stop()
            self._last_counts = dict(server.client_counts)
            self._server = None
            store.close()
