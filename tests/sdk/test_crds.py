"""The CRDs in crds/ are generated from the models; this fails when they drift."""

from pathlib import Path

import yaml

from podtask._contract.crds import crd_files, custom_resource_definitions

CRDS = Path(__file__).resolve().parents[2] / "crds"


def test_crds_folder_matches_the_models() -> None:
    expected = crd_files()
    on_disk = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert set(on_disk) == set(expected), "run `make crds`"
    for name, text in expected.items():
        assert on_disk[name] == text, (
            f"{name} drifted from podtask._contract.resources: run `make crds`"
        )


def _structural_problems(node: object, path: str = "") -> list[str]:
    """Every schema node needs a type unless it preserves unknown fields."""
    if not isinstance(node, dict):
        return []
    problems = []
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(path or "/")
    for key in ("properties",):
        for name, sub in node.get(key, {}).items():
            problems += _structural_problems(sub, f"{path}/{name}")
    if "items" in node:
        problems += _structural_problems(node["items"], f"{path}[]")
    return problems


def test_crd_schemas_are_structural_and_keep_payload_and_output() -> None:
    for crd in custom_resource_definitions():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert _structural_problems(schema) == [], crd["metadata"]["name"]
        assert "$ref" not in yaml.safe_dump(schema)
    taskrun = {c["spec"]["names"]["kind"]: c for c in custom_resource_definitions()}["TaskRun"]
    version = taskrun["spec"]["versions"][0]
    props = version["schema"]["openAPIV3Schema"]["properties"]
    assert props["spec"]["properties"]["payload"]["x-kubernetes-preserve-unknown-fields"]
    assert props["status"]["properties"]["output"]["x-kubernetes-preserve-unknown-fields"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:6] == ["Task", "Status", "Attempt", "Queue", "Machine", "Duration"]
    assert columns[-1] == "Age"
    assert taskrun["spec"]["names"]["categories"] == ["podtask"]
    assert "tr" in taskrun["spec"]["names"]["shortNames"]


# Times a resource records once they have happened; kubectl shows a `date` column as an age,
# and one in the future as <invalid>, so a time to come is a string column.
_PAST_TIMES = {".metadata.creationTimestamp", ".status.lastTimestamp"}


def test_date_columns_are_times_that_have_happened() -> None:
    for crd in custom_resource_definitions():
        for version in crd["spec"]["versions"]:
            for column in version["additionalPrinterColumns"]:
                if column["type"] == "date":
                    assert column["jsonPath"] in _PAST_TIMES, (
                        crd["metadata"]["name"],
                        column,
                    )
