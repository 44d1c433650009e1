"""The KubeRay manifests are valid RayCluster/RayJob objects of KubeRay v1.7.0 (its CRD schemas,
vendored under tests/data/kuberay), and no Ray container starts a second `ray start`.

The schemas are checked the way the API server checks them under strict field validation
(kubectl's default): an object with declared properties takes no others, unless the schema
marks it x-kubernetes-preserve-unknown-fields."""

from __future__ import annotations

import copy
import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "tests" / "data" / "kuberay"
MANIFESTS = sorted((ROOT / "infra" / "kubernetes").glob("*.yaml"))
KINDS = {"RayCluster": "ray.io_rayclusters", "RayJob": "ray.io_rayjobs"}


def _closed(schema: Any) -> Any:
    """The schema with additionalProperties: false wherever the API server would drop or
    reject unknown fields."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def validator(kind: str) -> Any:
    doc = json.loads(gzip.decompress((SCHEMAS / f"{KINDS[kind]}.v1.schema.json.gz").read_bytes()))
    assert "Apache-2.0" in doc["_licence"] and "v1.7.0" in doc["_version"]
    schema = _closed(doc["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def errors(obj: dict) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(obj["kind"]).iter_errors(obj)
    ]


def ray_objects() -> list[dict]:
    objs = []
    for path in MANIFESTS:
        objs += [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] in KINDS]
    return objs


def cluster_specs(obj: dict) -> dict:
    return obj["spec"]["rayClusterSpec"] if obj["kind"] == "RayJob" else obj["spec"]


def ray_containers(obj: dict) -> list[dict]:
    spec = cluster_specs(obj)
    groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def starts_ray_twice(container: dict) -> bool:
    """True when the container's own command runs `ray start` and also expands KubeRay's
    generated one, which already holds the whole `ray start ...` command."""
    text = " ".join([*container.get("command", []), *container.get("args", [])])
    generated = text.find("KUBERAY_GEN_RAY_START_CMD")
    return generated >= 0 and re.search(r"\bray\s+start\b", text[:generated]) is not None


def test_both_kinds_are_present() -> None:
    kinds = sorted(o["kind"] for o in ray_objects())
    assert kinds == ["RayCluster", "RayJob"]


@pytest.mark.parametrize("obj", ray_objects(), ids=lambda o: o["kind"])
def test_manifest_is_valid_against_kuberay_crd(obj: dict) -> None:
    assert errors(obj) == []


@pytest.mark.parametrize("obj", ray_objects(), ids=lambda o: o["kind"])
def test_ray_containers_leave_the_start_command_to_kuberay(obj: dict) -> None:
    containers = ray_containers(obj)
    assert len(containers) >= 2
    for c in containers:
        assert not starts_ray_twice(c), c["name"]
        assert "ray start" not in " ".join([*c.get("command", []), *c.get("args", [])])


def test_the_old_double_ray_start_is_caught() -> None:
    old = {"args": ["ulimit -n 65536; ray start --head --block $KUBERAY_GEN_RAY_START_CMD"]}
    assert starts_ray_twice(old)
    assert not starts_ray_twice({"args": ["ulimit -n 65536; $KUBERAY_GEN_RAY_START_CMD"]})


def test_rayjob_runs_the_nightly_job_and_cleans_up() -> None:
    job = next(o for o in ray_objects() if o["kind"] == "RayJob")
    assert job["spec"]["entrypoint"].startswith("python /opt/facesieve/jobs/nightly.py s3://")
    assert "--out s3://" in job["spec"]["entrypoint"]
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    for obj in ray_objects():
        assert cluster_specs(obj)["authOptions"] == {"mode": "token"}
        assert cluster_specs(obj)["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


def test_gpu_requests_only_on_gpu_groups() -> None:
    for obj in ray_objects():
        spec = cluster_specs(obj)
        head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
        assert "nvidia.com/gpu" not in head["resources"]["limits"]
        for group in spec["workerGroupSpecs"]:
            limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
            image = group["template"]["spec"]["containers"][0]["image"]
            assert (
                ("nvidia.com/gpu" in limits)
                == (group["groupName"] == "gpu")
                == (image.endswith("-cuda"))
            )


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("spec", "headGroupSpec", "rayStartParam"), {}, "Additional properties"),  # a typo
        (("spec", "workerGroupSpecs", 0, "replicas"), "1", "is not of type 'integer'"),
        (("spec", "headGroupSpec", "rayStartParams", "num-cpus"), 0, "is not of type 'string'"),
        (("spec", "authOptions", "mode"), "tokens", "is not one of"),
    ],
)
def test_the_schema_rejects_what_kubernetes_rejects(path: tuple, value: Any, expected: str) -> None:
    obj = copy.deepcopy(next(o for o in ray_objects() if o["kind"] == "RayCluster"))
    node = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    found = errors(obj)
    assert found and any(expected in e for e in found), found
