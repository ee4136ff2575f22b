import pytest

from podtask import PRESETS, TaskDeclarationError, machine_preset
from podtask._contract.machines import pod_resources

TRIGGER_DEV_SIZES = {
    "micro": (0.25, 0.25),
    "small-1x": (0.5, 0.5),
    "small-2x": (1, 1),
    "medium-1x": (1, 2),
    "medium-2x": (2, 4),
    "large-1x": (4, 8),
    "large-2x": (8, 16),
}


def test_presets_match_trigger_dev_machines() -> None:
    assert {name: (p.cpu, p.memory_gb) for name, p in PRESETS.items()} == TRIGGER_DEV_SIZES


def test_unknown_machine_lists_the_valid_ones() -> None:
    with pytest.raises(TaskDeclarationError) as err:
        machine_preset("huge-9x")
    assert "huge-9x" in str(err.value)
    for name in TRIGGER_DEV_SIZES:
        assert name in str(err.value)


def test_pod_resources_are_the_preset_as_limits_and_ratios_as_requests() -> None:
    resources = pod_resources(machine_preset("medium-1x"))
    assert resources == {
        "requests": {"cpu": "750m", "memory": "2048Mi"},
        "limits": {"cpu": "1000m", "memory": "2048Mi"},
    }
    custom = pod_resources(machine_preset("micro"), cpu_request_ratio=0.5, memory_request_ratio=0.5)
    assert custom["requests"] == {"cpu": "125m", "memory": "128Mi"}
    assert custom["limits"] == {"cpu": "250m", "memory": "256Mi"}


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5])
def test_request_ratios_outside_zero_to_one_are_refused(ratio: float) -> None:
    with pytest.raises(ValueError):
        pod_resources(machine_preset("micro"), cpu_request_ratio=ratio)
