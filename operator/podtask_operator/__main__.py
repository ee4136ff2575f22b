"""`python -m podtask_operator`: run the operator against KUBECONFIG's cluster or in-cluster.

Start-up order: the health endpoint first (a standby answers healthy), then the Lease (this
blocks while another replica leads), and only once leading: the Lease renewals, housekeeping
and kopf with the handlers. Crash-only: a leader that loses its Lease exits at once with
`EXIT_LEADERSHIP_LOST` and Kubernetes restarts it as a standby; SIGTERM stops kopf and
releases the Lease, so that a standby takes over without waiting for it to expire.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from datetime import timedelta
from typing import Any, NoReturn

import kopf

# Importing the handlers registers them with kopf.
from podtask_operator.handlers import (
    HEALTH_MEMO_KEY,
    LOGIN_MEMO_KEY,
    SETTINGS_MEMO_KEY,
    SWEEP_INDEX_MEMO_KEY,
)

# Importing health also registers its Lease event handler, which feeds the heartbeat.
from podtask_operator.health import (
    WATCH_HEARTBEAT,
    HealthAddress,
    OperatorHealth,
    serve_health,
)
from podtask_operator.housekeeping import HousekeepingClient, run_housekeeping
from podtask_operator.kube_login import NoCredentials, load_login
from podtask_operator.leadership import (
    LeaderElector,
    LeaseKeeper,
    LeaseStore,
    default_identity,
)
from podtask_operator.metrics import LEADER
from podtask_operator.settings import OperatorSettings
from podtask_operator.sweep_index import SweepIndex

log = logging.getLogger("podtask_operator")

EXIT_LEADERSHIP_LOST = 3
_STOP_FLAG = "podtask_stop_flag"


def _health_address(liveness: str | None, settings: OperatorSettings) -> HealthAddress | None:
    if liveness:
        return HealthAddress.from_url(liveness)
    if settings.health_port is not None:
        return HealthAddress(settings.health_host, settings.health_port)
    return None


@kopf.on.cleanup()
async def _raise_the_stop_flag(memo: kopf.Memo, **_: Any) -> None:
    """When kopf stops on a signal of its own, raise our stop flag too: kopf waits for its waiter
    on that flag as a hung task, which would delay the Lease's release by seconds."""
    stop = memo.get(_STOP_FLAG)
    if isinstance(stop, asyncio.Event):
        stop.set()


def _exit_now(reason: str) -> NoReturn:
    """Lost leadership: end the process on the spot. Nothing may keep acting (no kopf handler,
    no graceful shutdown) once another replica may already be leading."""
    log.critical("lost leadership: %s; exiting to restart as a standby", reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_LEADERSHIP_LOST)


async def _cancel(task: asyncio.Task[object] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def serve(settings: OperatorSettings, health_address: HealthAddress | None) -> int:
    """Run one replica until SIGTERM/SIGINT (exit code 0) or lost leadership (process exit)."""
    health = OperatorHealth(
        WATCH_HEARTBEAT,
        stall_seconds=settings.watch_stall_seconds,
        # Without the leader's Lease renewals an idle operator sees no events at all: silence
        # would not mean a stalled watch.
        detect_stalls=settings.leader_election,
    )
    server = await serve_health(health, health_address) if health_address else None
    # Set by SIGTERM/SIGINT while standing by; then handed to kopf as its stop flag, so that a
    # signal arriving between winning the Lease and kopf installing its own handlers still counts.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    login = load_login()
    elector: LeaderElector | None = None
    keeper: LeaseKeeper | None = None
    housekeeping: asyncio.Task[object] | None = None
    housekeeping_client: HousekeepingClient | None = None
    try:
        if settings.leader_election:
            store = LeaseStore(
                login,
                settings.namespace,
                settings.lease_name,
                request_timeout=max(1.0, settings.lease_renew_seconds),
            )
            elector = LeaderElector(
                store,
                default_identity(),
                duration_seconds=settings.lease_duration_seconds,
                renew_seconds=settings.lease_renew_seconds,
            )
            if not await elector.acquire(stop):
                return 0
            keeper = LeaseKeeper(elector, on_lost=_exit_now)
            keeper.start()
            log.info("leading as %s (Lease %s)", elector.identity, elector.lease_ref)
        else:
            log.info("leading (leader election is off)")
        health.start_leading()
        LEADER.set(1)
        # Filled by the handlers from kopf's watches, read by housekeeping's sweeps.
        sweep_index = SweepIndex()
        housekeeping_client = HousekeepingClient(login, settings.namespace)
        housekeeping = asyncio.create_task(
            run_housekeeping(
                housekeeping_client,
                sweep_index,
                interval_seconds=settings.housekeeping_interval_seconds,
                pod_retention=timedelta(seconds=settings.pod_retention_seconds),
                run_retention=timedelta(seconds=settings.run_retention_seconds),
                batch_abandon_after=timedelta(seconds=settings.batch_abandon_seconds),
            ),
            name="housekeeping",
        )
        # Tasks created before this call are not kopf's: it leaves them alone when it stops.
        await kopf.operator(
            standalone=True,
            clusterwide=False,
            namespaces=[settings.namespace],
            stop_flag=stop,
            memo=kopf.Memo(
                {
                    _STOP_FLAG: stop,
                    SETTINGS_MEMO_KEY: settings,
                    SWEEP_INDEX_MEMO_KEY: sweep_index,
                    LOGIN_MEMO_KEY: login,
                    HEALTH_MEMO_KEY: health,
                }
            ),
        )
        return 0
    finally:
        await _cancel(housekeeping)
        if housekeeping_client is not None:
            await housekeeping_client.close()
        if keeper is not None:
            await asyncio.to_thread(keeper.stop)
        if elector is not None:
            await elector.release()
            await elector.close()
        if server is not None:
            server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="podtask-operator", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument(
        "--liveness",
        default=None,
        help="serve the health endpoint here, e.g. http://0.0.0.0:8080/healthz "
        "(else on PODTASK_HEALTH_PORT, if set)",
    )
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    settings = OperatorSettings()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s [operator] %(name)s: %(message)s",
    )
    if not args.verbose:
        # kopf logs every handler call at INFO: one line per watch event is noise here.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        code = asyncio.run(serve(settings, _health_address(args.liveness, settings)))
    except NoCredentials as exc:  # what to set, not a traceback
        sys.exit(f"podtask-operator: {exc}")
    sys.exit(code)


if __name__ == "__main__":
    main()
