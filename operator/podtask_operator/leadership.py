"""Leader election on a `coordination.k8s.io/v1` Lease: one active operator among replicas.

This module owns what the Lease means (who holds it, and until when), the pure decision a
replica takes on reading it (acquire, renew or wait), the `LeaderElector` that waits for
leadership, keeps it and releases it, and the `LeaseKeeper` that renews on a thread of its own.

Crash-only: a leader that cannot renew in time does not step down gracefully, it stops
renewing and `keep_leading` raises `LeadershipLost`; the caller exits the process at once and
Kubernetes restarts it as a standby. The leader gives up `renew_seconds` before its Lease can
expire in anyone's eyes, so two replicas are never active together (up to clock skew between
nodes, which the Lease's wall-clock `renewTime` cannot avoid).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from podtask._contract.resources import parse_timestamp
from podtask_operator.kube import Conflict, Kube, group_path
from podtask_operator.kube_login import KubeLogin

log = logging.getLogger(__name__)

COORDINATION = "coordination.k8s.io"
LEASE_API_VERSION = f"{COORDINATION}/v1"


class LeaseAction(enum.StrEnum):
    ACQUIRE = "acquire"
    RENEW = "renew"
    WAIT = "wait"


def format_lease_time(moment: datetime) -> str:
    """MicroTime as the API server writes it: UTC, six fractional digits, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_expiry(lease_spec: Mapping[str, Any], duration_seconds: float) -> datetime | None:
    """When the current holding lapses: last renewal plus the duration the holder declared."""
    renewed = parse_timestamp(lease_spec.get("renewTime")) or parse_timestamp(
        lease_spec.get("acquireTime")
    )
    if renewed is None:
        return None
    declared = lease_spec.get("leaseDurationSeconds")
    # The holder's own declared duration wins: it is what the holder promised to renew within.
    duration = declared if isinstance(declared, int) and declared > 0 else duration_seconds
    return renewed + timedelta(seconds=duration)


def lease_decision(
    lease_spec: Mapping[str, Any] | None, me: str, now: datetime, duration_seconds: float
) -> LeaseAction:
    """What replica `me` does on reading the Lease (`None`: there is no Lease yet)."""
    if lease_spec is None:
        return LeaseAction.ACQUIRE
    holder = lease_spec.get("holderIdentity")
    if holder == me:
        return LeaseAction.RENEW
    if not holder:
        return LeaseAction.ACQUIRE
    expiry = lease_expiry(lease_spec, duration_seconds)
    if expiry is None or expiry < now:
        return LeaseAction.ACQUIRE
    return LeaseAction.WAIT


def claimed_spec(
    lease_spec: Mapping[str, Any] | None, me: str, now: datetime, duration_seconds: int
) -> dict[str, Any]:
    """The Lease spec once `me` has acquired or renewed it at `now`."""
    previous = dict(lease_spec or {})
    stamp = format_lease_time(now)
    if previous.get("holderIdentity") == me:
        return {**previous, "renewTime": stamp, "leaseDurationSeconds": duration_seconds}
    transitions = previous.get("leaseTransitions")
    return {
        **previous,
        "holderIdentity": me,
        "leaseDurationSeconds": duration_seconds,
        "acquireTime": stamp,
        "renewTime": stamp,
        # Counts changes of holder; the first holder of a new Lease is not a transition.
        "leaseTransitions": (transitions if isinstance(transitions, int) else 0)
        + (1 if lease_spec else 0),
    }


def released_spec(lease_spec: Mapping[str, Any]) -> dict[str, Any]:
    """The Lease spec once its holder has let go: no holder, so anyone may acquire at once."""
    return {**lease_spec, "holderIdentity": None}


def renewal_overdue(last_renewed: float, now: float, renew_deadline: float) -> bool:
    """Whether a leader whose last renewal began at `last_renewed` (monotonic) is lost."""
    return now - last_renewed >= renew_deadline


def default_identity() -> str:
    """This replica's holder identity: its pod name (the hostname in a pod) and a random
    suffix, so that a restarted container never mistakes its predecessor's holding for its own."""
    return f"{socket.gethostname()}-{secrets.token_hex(4)}"


class LeaseConflict(Exception):
    """Another replica wrote the Lease first (409: AlreadyExists or a stale resourceVersion)."""


class LeadershipLost(Exception):
    """The leader could not renew in time, or found the Lease held by someone else."""


class LeaseStore:
    """Reads and writes one Lease through a `Kube` of its own (two connections, no retries: a
    renewal has a deadline of its own), so that the renewals never queue behind other work."""

    def __init__(
        self,
        login: KubeLogin,
        namespace: str,
        name: str,
        *,
        request_timeout: float = 10.0,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self._kube = Kube(login, connections=2, retries=1, timeout=request_timeout)
        self._leases = group_path(COORDINATION, "v1", namespace, "leases")

    async def close(self) -> None:
        """Close this loop's connections (the keeper's loop closes its own)."""
        await self._kube.close()

    async def read(self) -> dict[str, Any] | None:
        return await self._kube.get_or_none(f"{self._leases}/{self.name}")

    async def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": LEASE_API_VERSION,
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        return await self._write("POST", self._leases, body)

    async def replace(self, lease: Mapping[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        """Write `spec` over `lease` as read: its resourceVersion makes a concurrent write a 409."""
        return await self._write("PUT", f"{self._leases}/{self.name}", {**lease, "spec": spec})

    async def _write(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._kube.request(method, path, body=body)
        except Conflict as exc:
            raise LeaseConflict(exc.reason) from exc


class _Claim(enum.Enum):
    HELD = "held"  # we hold the Lease now
    TAKEN = "taken"  # someone else holds it and it has not expired
    RACED = "raced"  # someone else wrote it between our read and our write


class LeaderElector:
    """One replica's part in the election: `acquire`, then `keep_leading`, then `release`."""

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        *,
        duration_seconds: int,
        renew_seconds: float,
        utcnow: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if renew_seconds * 2 > duration_seconds:
            raise ValueError("renew_seconds must be at most half of duration_seconds")
        self.identity = identity
        self.duration_seconds = duration_seconds
        self.renew_seconds = renew_seconds
        # Give up one renew interval before the Lease can expire for the others.
        self.renew_deadline = duration_seconds - renew_seconds
        self._store = store
        self._utcnow = utcnow
        self._monotonic = monotonic
        self._last_renewed: float | None = None
        self._holder_seen: str | None = None
        self._expiry_seen: datetime | None = None

    @property
    def lease_ref(self) -> str:
        return f"{self._store.namespace}/{self._store.name}"

    async def _claim(self, *, renew_only: bool) -> _Claim:
        lease = await self._store.read()
        spec: dict[str, Any] | None = (lease.get("spec") or {}) if lease is not None else None
        now = self._utcnow()
        action = lease_decision(spec, self.identity, now, self.duration_seconds)
        if action is LeaseAction.WAIT or (renew_only and action is not LeaseAction.RENEW):
            # A leader that finds the Lease not its own must not take it back: someone else may
            # have led in between.
            self._holder_seen = (spec or {}).get("holderIdentity")
            self._expiry_seen = lease_expiry(spec or {}, self.duration_seconds)
            return _Claim.TAKEN
        new_spec = claimed_spec(spec, self.identity, now, self.duration_seconds)
        try:
            if lease is None:
                await self._store.create(new_spec)
            else:
                await self._store.replace(lease, new_spec)
        except LeaseConflict:
            return _Claim.RACED
        return _Claim.HELD

    async def try_acquire(self) -> bool:
        """One round: take or renew the Lease if it is free, expired or ours."""
        started = self._monotonic()
        if await self._claim(renew_only=False) is _Claim.HELD:
            self._last_renewed = started
            return True
        return False

    def _standby_pause(self) -> float:
        # Poll every renew interval, but wake up right when the holder's Lease would expire.
        if self._expiry_seen is None:
            return self.renew_seconds
        until_expiry = (self._expiry_seen - self._utcnow()).total_seconds()
        return max(0.05, min(self.renew_seconds, until_expiry + 0.05))

    async def acquire(self, stop: asyncio.Event | None = None) -> bool:
        """Wait until this replica leads (True), or until `stop` is set (False)."""
        stop = stop or asyncio.Event()
        announced = False
        while not stop.is_set():
            try:
                if await self.try_acquire():
                    return True
            except Exception as exc:
                log.warning("cannot read or write the Lease %s: %s", self.lease_ref, exc)
            if not announced:
                log.info(
                    "standby: the Lease %s is held by %s; waiting to lead as %s",
                    self.lease_ref,
                    self._holder_seen or "another replica",
                    self.identity,
                )
                announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._standby_pause())
        return False

    async def keep_leading(self) -> NoReturn:
        """Renew every `renew_seconds` (retrying sooner after a failure) until leadership is lost;
        then raise `LeadershipLost`. Only ever ends by that or by cancellation."""
        if self._last_renewed is None:
            raise LeadershipLost("keep_leading before acquire")
        retry_seconds = min(self.renew_seconds, 1.0)
        pause = self.renew_seconds
        while True:
            left = self.renew_deadline - (self._monotonic() - self._last_renewed)
            await asyncio.sleep(max(0.0, min(pause, left)))
            if renewal_overdue(self._last_renewed, self._monotonic(), self.renew_deadline):
                raise LeadershipLost(
                    f"no renewal of the Lease {self.lease_ref} for {self.renew_deadline:g}s"
                )
            started = self._monotonic()
            left = self.renew_deadline - (started - self._last_renewed)
            try:
                # A hung call must not outlive the deadline: the lost check above must run.
                claim = await asyncio.wait_for(self._claim(renew_only=True), timeout=left)
            except TimeoutError:
                claim = None
                log.warning("renewing the Lease %s timed out", self.lease_ref)
            except Exception as exc:
                claim = None
                log.warning("cannot renew the Lease %s: %s", self.lease_ref, exc)
            if claim is _Claim.TAKEN:
                raise LeadershipLost(
                    f"the Lease {self.lease_ref} is now held by {self._holder_seen or 'nobody'}"
                )
            if claim is _Claim.HELD:
                self._last_renewed = started
                pause = self.renew_seconds
            else:
                pause = retry_seconds

    async def release(self) -> None:
        """Let go of the Lease, if still ours, so that a standby takes over without waiting for
        it to expire. Best effort: when this fails, the Lease simply expires."""
        try:
            lease = await asyncio.wait_for(self._store.read(), timeout=self.renew_seconds * 2)
            spec = (lease or {}).get("spec") or {}
            if lease is None or spec.get("holderIdentity") != self.identity:
                return
            await asyncio.wait_for(
                self._store.replace(lease, released_spec(spec)), timeout=self.renew_seconds * 2
            )
            log.info("released the Lease %s", self.lease_ref)
        except Exception as exc:
            log.warning("cannot release the Lease %s (it will expire): %s", self.lease_ref, exc)
        finally:
            self._last_renewed = None

    async def close(self) -> None:
        """Close the Lease store's connections of the running loop."""
        await self._store.close()


class LeaseKeeper:
    """Runs `keep_leading` on a thread with its own event loop, and calls `on_lost(reason)` from
    that thread the moment leadership is lost.

    A thread of its own, because nothing on the operator's loop (kopf starting up, a slow
    handler) may delay a renewal, and because the loss must be acted on even while that loop is
    busy: `on_lost` is expected to end the process there and then.
    """

    def __init__(self, elector: LeaderElector, on_lost: Callable[[str], object]) -> None:
        self._elector = elector
        self._on_lost = on_lost
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[NoReturn] | None = None

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def stop(self, timeout: float | None = None) -> None:
        """Stop renewing; once this returns, no renewal is started any more."""
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing to stop
                self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._task = loop.create_task(self._elector.keep_leading())
        self._started.set()
        try:
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            return
        except LeadershipLost as lost:
            self._on_lost(str(lost))
        except Exception as exc:
            self._on_lost(f"renewing failed unexpectedly: {exc!r}")
        finally:
            loop.run_until_complete(self._elector.close())
            loop.close()
