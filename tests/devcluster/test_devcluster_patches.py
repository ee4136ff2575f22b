"""Merge patch (RFC 7386), JSON patch (RFC 6902) and the strategic merge approximation."""

from __future__ import annotations

import pytest

from podtask_devcluster.patches import PatchError, json_patch, merge_patch, strategic_merge_patch


def test_merge_patch_rfc7386_examples() -> None:
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": "b", "b": "c"}, {"a": None}) == {"b": "c"}
    assert merge_patch({"a": ["b"]}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "c"}, {"a": ["b"]}) == {"a": ["b"]}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch([1, 2], {"a": "b", "c": None}) == {"a": "b"}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


def test_merge_patch_does_not_mutate() -> None:
    target = {"a": {"b": 1}}
    merge_patch(target, {"a": {"b": 2}})
    assert target == {"a": {"b": 1}}


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    result = json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/-", "value": 3},
            {"op": "add", "path": "/a/b/0", "value": 0},
            {"op": "replace", "path": "/c", "value": "y"},
            {"op": "copy", "from": "/c", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e"},
            {"op": "remove", "path": "/a/b/1"},
            {"op": "test", "path": "/e", "value": "y"},
            {"op": "add", "path": "/m~1n", "value": 1},
        ],
    )
    assert result == {"a": {"b": [0, 2, 3]}, "c": "y", "e": "y", "m/n": 1}
    assert doc == {"a": {"b": [1, 2]}, "c": "x"}


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "remove", "path": "/missing"}],
        [{"op": "replace", "path": "/missing", "value": 1}],
        [{"op": "test", "path": "/a", "value": 2}],
        [{"op": "add", "path": "/x/y", "value": 1}],
        [{"op": "bogus", "path": "/a"}],
        {"op": "add"},
    ],
)
def test_json_patch_failures(ops: object) -> None:
    with pytest.raises(PatchError):
        json_patch({"a": 1}, ops)


def test_strategic_merge_merges_named_lists_and_drops_directives() -> None:
    pod = {
        "spec": {
            "containers": [
                {"name": "a", "image": "x", "env": [{"name": "K", "value": "1"}]},
                {"name": "b", "image": "y"},
            ],
            "tolerations": ["t1"],
        }
    }
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [{"name": "a", "image": "z"}, {"name": "b", "$patch": "delete"}],
            "tolerations": ["t2"],
        }
    }
    result = strategic_merge_patch(pod, patch)
    assert result == {
        "spec": {
            "containers": [{"name": "a", "image": "z", "env": [{"name": "K", "value": "1"}]}],
            "tolerations": ["t2"],
        }
    }
