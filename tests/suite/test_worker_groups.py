"""The suite's own scheduling on pytest-xdist workers: which tests share a worker
(`tests/worker_groups.py`) and the order the units go in (`tests/worker_order.py`).

Pure: the items are pytest's shapes (fixture definitions with a scope, params and the
fixtures they use; a callspec), made here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.worker_groups import ONCE_PER_RUN, groups, instances
from tests.worker_order import UNKNOWN_SECONDS, Durations, longest_first

HERE = Path(__file__)


@dataclass
class Definition:
    scope: str
    argnames: tuple[str, ...] = ()
    params: list[str] | None = None
    func: Any = field(default=lambda: None)  # defined in this file: its package is tests/suite


def _item(nodeid: str, uses: dict[str, Definition], **params: str) -> Any:
    return SimpleNamespace(
        nodeid=nodeid,
        path=Path(nodeid.split("::")[0]),
        fixturenames=list(uses),
        _fixtureinfo=SimpleNamespace(name2fixturedefs={k: [v] for k, v in uses.items()}),
        callspec=SimpleNamespace(params=params),
    )


CLUSTER_KIND = Definition("package", params=["embedded", "real"])
STACK = Definition("package", argnames=("cluster_kind",))
COMPOSED = Definition("module", argnames=("cluster_kind",))
TMP = Definition("function")


def _on(uses: dict[str, Definition], *tests: tuple[str, str]) -> list[str | None]:
    """The group of each (node id, cluster) that uses `uses` and cluster_kind."""
    both = {**uses, "cluster_kind": CLUSTER_KIND}
    items = [_item(nodeid, both, cluster_kind=cluster) for nodeid, cluster in tests]
    found = groups(items)
    return [found.get(item.nodeid) for item in items]


def test_a_package_stack_is_one_group_per_cluster_a_module_stack_one_per_module() -> None:
    a_embedded, b_embedded, a_real = _on(
        {"stack": STACK},
        ("tests/e2e/test_a.py::test_one[embedded]", "embedded"),
        ("tests/e2e/test_b.py::test_two[embedded]", "embedded"),
        ("tests/e2e/test_a.py::test_one[real]", "real"),
    )
    assert a_embedded == b_embedded != a_real
    # cluster_kind, a parameter of the package, links the two modules' stacks no more.
    a_one, b_two, a_three = _on(
        {"composed": COMPOSED},
        ("tests/e2e/test_a.py::test_one[real]", "real"),
        ("tests/e2e/test_b.py::test_two[real]", "real"),
        ("tests/e2e/test_a.py::test_three[real]", "real"),
    )
    assert a_one == a_three != b_two


def test_a_test_using_two_shared_instances_joins_their_groups() -> None:
    stack = {"stack": STACK, "cluster_kind": CLUSTER_KIND}
    composed = {"composed": COMPOSED, "cluster_kind": CLUSTER_KIND}
    items = [
        _item("tests/e2e/test_a.py::test_stack[real]", stack, cluster_kind="real"),
        _item("tests/e2e/test_b.py::test_both[real]", stack | composed, cluster_kind="real"),
        _item("tests/e2e/test_b.py::test_composed[real]", composed, cluster_kind="real"),
        _item("tests/e2e/test_b.py::test_composed[embedded]", composed, cluster_kind="embedded"),
    ]
    found = groups(items)
    assert found[items[0].nodeid] == found[items[1].nodeid] == found[items[2].nodeid]
    assert found[items[3].nodeid] != found[items[0].nodeid]


def test_function_and_session_fixtures_make_no_group_except_those_run_once() -> None:
    session = Definition("session")
    (once,) = sorted(ONCE_PER_RUN)[:1]
    items = [
        _item("tests/sdk/test_a.py::test_pure", {"tmp_path": TMP}),
        _item("tests/api/test_b.py::test_kube", {"embedded_kube": session}),
        _item("tests/images/test_c.py::test_one", {once: session}),
        _item("tests/e2e/test_d.py::test_two", {once: session, "tmp_path": TMP}),
    ]
    found = groups(items)
    assert set(found) == {items[2].nodeid, items[3].nodeid}
    assert found[items[2].nodeid] == found[items[3].nodeid]
    assert instances(items[0]) == instances(items[1]) == []


def test_units_go_longest_first_by_their_tests_durations() -> None:
    units = {
        "group-a": {"t1": False, "t2": False, "t3": False},
        "t4": {"t4": False},
        "group-b": {"t5": False, "t6": False},
    }
    seconds = {"t1": 1.0, "t2": 1.0, "t3": 1.0, "t4": 240.0, "t5": 30.0}
    # t6 was never timed: it counts as a second or so, not as nothing.
    order = [name for name, _ in longest_first(units, lambda n: seconds.get(n, 1.0))]
    assert order == ["t4", "group-b", "group-a"]


def test_durations_are_kept_across_runs_and_merged(tmp_path: Path) -> None:
    path = tmp_path / "durations.json"
    first, second = Durations(path), Durations(path)
    for nodeid, seconds in (("a", 2.0), ("a", 0.5), ("b", 1.0)):  # setup, call, teardown
        first.record(SimpleNamespace(nodeid=nodeid, duration=seconds))  # type: ignore[arg-type]
    second.record(SimpleNamespace(nodeid="c", duration=7.0))  # type: ignore[arg-type]
    first.save()
    second.save()  # another run that ended at once: both kept
    later = Durations(path)
    assert (later.of("a"), later.of("b"), later.of("c")) == (2.5, 1.0, 7.0)
    assert later.of("never-timed") == UNKNOWN_SECONDS
