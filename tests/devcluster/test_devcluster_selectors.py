"""Label and field selector parsing and matching."""

from __future__ import annotations

import pytest

from podtask_devcluster.selectors import (
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)

LABELS = {"app": "web", "tier": "front", "podtask.dev/queue": "q-1"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("missing!=x", True),
        ("app in (web, db)", True),
        ("app in (db)", False),
        ("app notin (db,cache)", True),
        ("missing notin (a)", True),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("podtask.dev/queue=q-1", True),
        ("app in (web,db),!missing,tier", True),
        ("app=", False),
    ],
)
def test_label_selector_matches(selector: str, expected: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is expected


def test_label_selector_on_unlabelled_object() -> None:
    assert parse_label_selector("a!=b").matches(None)
    assert not parse_label_selector("a").matches(None)


@pytest.mark.parametrize("bad", ["app=web,", "app in (web", "=x", "a b", "app in web"])
def test_label_selector_rejects_garbage(bad: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(bad)


POD = {
    "metadata": {"name": "p1", "namespace": "default"},
    "spec": {"nodeName": "podtask-dev"},
    "status": {"phase": "Running"},
}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("metadata.name=p1", True),
        ("metadata.name==p1", True),
        ("metadata.name!=p1", False),
        ("metadata.namespace=default,status.phase=Running", True),
        ("status.phase=Succeeded", False),
        ("spec.nodeName=podtask-dev", True),
        ("status.phase!=Succeeded,status.phase!=Failed", True),
        ("spec.missing=", True),
    ],
)
def test_field_selector_matches(selector: str, expected: bool) -> None:
    assert parse_field_selector(selector).matches(POD) is expected


def test_field_selector_escapes_and_exact_name() -> None:
    selector = parse_field_selector(r"metadata.name=a\,b")
    assert selector.matches({"metadata": {"name": "a,b"}})
    assert selector.exact_name() == "a,b"
    assert parse_field_selector("metadata.name!=x").exact_name() is None
