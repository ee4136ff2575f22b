"""Machine presets: the sizes a task can ask for, and the pod resources they become.

The preset table mirrors Trigger.dev's machines. It is the single source of
truth for cpu and memory; the operator and the chart read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from podtask.errors import TaskDeclarationError


@dataclass(frozen=True)
class MachinePreset:
    """One machine size: vCPUs and memory in GB (1 GB = 1024 MiB, as Trigger.dev counts)."""

    name: str
    cpu: float
    memory_gb: float

    @property
    def memory_mib(self) -> int:
        return round(self.memory_gb * 1024)


PRESETS: dict[str, MachinePreset] = {
    p.name: p
    for p in (
        MachinePreset("micro", 0.25, 0.25),
        MachinePreset("small-1x", 0.5, 0.5),
        MachinePreset("small-2x", 1, 1),
        MachinePreset("medium-1x", 1, 2),
        MachinePreset("medium-2x", 2, 4),
        MachinePreset("large-1x", 4, 8),
        MachinePreset("large-2x", 8, 16),
    )
}

DEFAULT_MACHINE = "small-1x"
DEFAULT_CPU_REQUEST_RATIO = 0.75
DEFAULT_MEMORY_REQUEST_RATIO = 1.0


def machine_preset(name: str) -> MachinePreset:
    """The preset called `name`; an unknown name is an error that lists the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        valid = ", ".join(PRESETS)
        raise TaskDeclarationError(
            f"unknown machine {name!r}; valid machines are: {valid}"
        ) from None


def _millicores(cpu: float) -> str:
    return f"{max(1, round(cpu * 1000))}m"


def _mebibytes(mib: float) -> str:
    return f"{max(1, round(mib))}Mi"


def pod_resources(
    preset: MachinePreset,
    *,
    cpu_request_ratio: float = DEFAULT_CPU_REQUEST_RATIO,
    memory_request_ratio: float = DEFAULT_MEMORY_REQUEST_RATIO,
) -> dict[str, dict[str, str]]:
    """Container `resources` for a preset: limits are the preset, requests a ratio of it.

    A cpu request below the limit lets small tasks pack densely while the limit
    still caps them; memory requests default to the limit so the scheduler never
    overcommits memory (an OOM kill is a retry, not a surprise).
    """
    if not 0 < cpu_request_ratio <= 1 or not 0 < memory_request_ratio <= 1:
        raise ValueError("request ratios must be in (0, 1]")
    return {
        "requests": {
            "cpu": _millicores(preset.cpu * cpu_request_ratio),
            "memory": _mebibytes(preset.memory_mib * memory_request_ratio),
        },
        "limits": {
            "cpu": _millicores(preset.cpu),
            "memory": _mebibytes(preset.memory_mib),
        },
    }
