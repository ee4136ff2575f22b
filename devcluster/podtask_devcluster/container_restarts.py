"""Whether a kubelet starts a pod's ended container again, and how long it waits first: the
pod's `restartPolicy`, and the back-off of a container that keeps ending (CrashLoopBackOff),
as kubelet's `flowcontrol.Backoff` keeps it per container. Pure.

A container that ends the first time starts again at once; each later end waits 10 s, then
20 s, doubling up to 5 minutes; a container whose back-off was last set more than twice that
cap ago (it ran well for ten minutes) starts at once again and its back-off starts over."""

from __future__ import annotations

from dataclasses import dataclass

from podtask_devcluster.store import JsonObject

ALWAYS = "Always"
ON_FAILURE = "OnFailure"
NEVER = "Never"
# kubelet's initial and maximum container restart back-off.
BACKOFF_SECONDS = (10.0, 300.0)


def restart_policy(pod: JsonObject) -> str:
    """The pod's restartPolicy (the apiserver defaults it to Always)."""
    return str((pod.get("spec") or {}).get("restartPolicy") or ALWAYS)


def starts_again(policy: str, exit_code: int) -> bool:
    """Whether a container that ended with `exit_code` is started again under `policy`."""
    return policy == ALWAYS or (policy == ON_FAILURE and exit_code != 0)


@dataclass(frozen=True)
class BackOff:
    """One container's back-off: the wait before its next start once it is in back-off, and
    when that was set (seconds on the caller's clock; None before its first end)."""

    delay: float = 0.0
    set_at: float | None = None


def next_start(
    backoff: BackOff, ended_at: float, bounds: tuple[float, float] = BACKOFF_SECONDS
) -> tuple[float, BackOff]:
    """How long after its end at `ended_at` a container starts again, and its back-off once
    it has."""
    initial, cap = bounds
    if backoff.set_at is None or ended_at - backoff.set_at > 2 * cap:
        return 0.0, BackOff(initial, ended_at)
    return backoff.delay, BackOff(min(backoff.delay * 2, cap), ended_at + backoff.delay)


def pod_label(pod: JsonObject) -> str:
    """How a kubelet names a pod in its messages: `name_namespace(uid)`."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def go_duration(seconds: float) -> str:
    """`seconds` as Go prints a `time.Duration` of whole seconds: 10s, 1m20s, 5m0s."""
    whole = round(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def crash_loop_waiting(delay: float, container: str, pod: JsonObject) -> JsonObject:
    """The waiting state of a container in back-off, as a kubelet reports it."""
    return {
        "reason": "CrashLoopBackOff",
        "message": f"back-off {go_duration(delay)} restarting failed container={container} "
        f"pod={pod_label(pod)}",
    }


def back_off_message(container: str, pod: JsonObject) -> str:
    """The message of the Warning Event a kubelet posts while a container is in back-off."""
    return f"Back-off restarting failed container {container} in pod {pod_label(pod)}"
