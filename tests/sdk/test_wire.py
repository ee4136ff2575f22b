"""The wire vocabulary keeps its own rules."""

from podtask._contract import wire


def test_every_environment_variable_has_the_prefix() -> None:
    names = {name: value for name, value in vars(wire).items() if name.startswith("ENV_")}
    assert len(names) > 5
    assert all(value.startswith(wire.ENV_PREFIX) for value in names.values()), names


def test_the_runner_path_names_the_run_and_the_attempt() -> None:
    path = wire.RUNNER_ATTEMPT_PATH.format(run_id="r", attempt=2)
    assert path == "/api/v1/runner/runs/r/attempts/2"
